"""Locating SIP servers (RFC 3263): from a SIP or SIPS URI to the ordered list of (transport, IP, port) to try.

Theory of operation
-------------------
RFC 3263 §4 works on TARGET, the URI's ``maddr`` parameter if present, else its host, in two steps.

1. Transport (§4.1). A ``transport`` parameter wins. Otherwise a numeric TARGET, or a host name with an
   explicit port, means UDP for ``sip:`` and TLS for ``sips:``, with no DNS. Otherwise the domain's NAPTR
   records, sorted by order then preference, say which transports the server offers and in which order; a
   record is discarded unless its flag is "s" and its service is one we support (only "SIPS+D2T" for a
   ``sips:`` URI); if the domain's SIP records are all discarded, it offers nothing we can use and resolution
   fails. Without NAPTR records for SIP, we query SRV for every transport we support (``_sips._tcp`` too for
   a ``sip:`` URI) and use those that answer, in our order of preference.
2. Address and port (§4.2). A numeric TARGET is used as is, with the URI's port or the transport's default
   (5060, or 5061 for TLS). A host name with a port is looked up as A/AAAA. Otherwise the SRV records found
   above are put in RFC 2782 order (priority, then a weighted random draw within a priority) and each target
   is looked up as A/AAAA. If there are no SRV records at all, the domain's own A/AAAA records are used,
   at the default port.

`Resolver.resolve` does not stop at the first transport: it returns every candidate in order, so that the
transaction layer can fail over (§4.3) without asking DNS again.

The resolver falls back (NAPTR, then SRV, then A/AAAA) only when DNS shows that the records are absent
(NXDOMAIN or an empty answer). A lookup that fails (timeout, SERVFAIL) raises `ResolveError`, unless another
branch of the same resolution (the other address family, another SRV target, another NAPTR record) produced
targets. Falling back after a failure could send SIP to the domain's web server.

DNS answers are cached: a positive answer for its TTL, a negative one for the SOA minimum (RFC 2308 §5).
Concurrent lookups of the same record share one query. The ordered result is not cached, so each
resolution makes a new weighted SRV draw and spreads load as RFC 2782 intends. Only DNS is consulted, never
/etc/hosts.

Not implemented: SCTP and WebSocket services ("D2S", "D2W"), NAPTR flags other than "s" and rewrite regexps,
§4.4 (stateless proxies), §5 (server usage: sending responses to a Via sent-by).

References: RFC 3263 §4.1-§4.3; RFC 2782 ("Usage rules"); RFC 3403 §4.1 (NAPTR order and preference);
RFC 2308 §5 (negative caching); RFC 3261 §19.1.1-§19.1.2 and §25.1 (URI syntax, ``transport`` and ``maddr``
parameters, default ports).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import itertools
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.NAPTR
import dns.rdtypes.IN.SRV
import dns.resolver

__all__ = ["ParamsLike", "ResolveError", "ResolvedTarget", "Resolver", "SipUriLike", "order_srv"]

TRANSPORTS = ("UDP", "TCP", "TLS")

# RFC 3261 §19.1.2: 5060 for UDP and TCP, 5061 for TLS.
_DEFAULT_PORT = {"UDP": 5060, "TCP": 5060, "TLS": 5061}

# RFC 3263 §4.2: "_sips" for TLS (also for a SIP URI), "_sip" otherwise; "_tcp" for TCP and TLS.
_SRV_PREFIX = {"UDP": "_sip._udp", "TCP": "_sip._tcp", "TLS": "_sips._tcp"}

# RFC 3263 §4.1 and §9 (the IANA table), limited to the transports we have.
_NAPTR_SERVICE = {b"sip+d2u": "UDP", b"sip+d2t": "TCP", b"sips+d2t": "TLS"}

_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_NAPTR = dns.rdatatype.NAPTR
_SRV = dns.rdatatype.SRV
_SOA = dns.rdatatype.SOA

_Records = tuple[dns.rdata.Rdata, ...]
_Key = tuple[dns.name.Name, dns.rdatatype.RdataType]


class ResolveError(Exception):
    """No SIP server could be located for `domain`. The message gives the domain and the reason."""

    def __init__(self, domain: str, reason: str) -> None:
        super().__init__(f"{domain}: {reason}")
        self.domain = domain
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """One place to send a request. `priority` and `weight` come from the SRV record, 0 without one."""

    transport: str  # "UDP", "TCP" or "TLS"
    host: str  # an IP address, without brackets
    port: int
    priority: int = 0
    weight: int = 0


class ParamsLike(Protocol):
    """URI parameters: a mapping, or anything with a ``get`` that ignores case as SIP does (RFC 3261 §19.1.4)."""

    def get(self, name: str, /) -> str | None: ...


class SipUriLike(Protocol):
    """What we read from a parsed SIP URI, such as `voxswitch.sip.uri.SipUri`."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def params(self) -> ParamsLike: ...


class _Weighted(Protocol):
    @property
    def priority(self) -> int: ...
    @property
    def weight(self) -> int: ...


_W = TypeVar("_W", bound=_Weighted)


def order_srv(records: Iterable[_W], rng: random.Random) -> list[_W]:
    """Put SRV records in the order to try them: RFC 2782 "Usage rules".

    Lowest priority first. Within a priority, records are drawn one at a time: weight-0 records go to the front,
    a number is drawn uniformly from 0 to the sum of the weights (inclusive), and the first record whose running
    weight sum reaches it is taken. So a weight-0 record is rarely chosen, but it can be. When no weight-0
    record is left we draw from 1: the RFC's 0 would then go to the first record, an extra chance that its
    weight does not give it.
    """
    by_priority: dict[int, list[_W]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[_W] = []
    for priority in sorted(by_priority):
        pool = sorted(by_priority[priority], key=lambda r: r.weight > 0)  # stable: weight 0 first
        while pool:
            total = sum(r.weight for r in pool)
            draw = rng.randint(0 if pool[0].weight == 0 else 1, total)
            sums = itertools.accumulate(r.weight for r in pool)
            ordered.append(pool.pop(next(i for i, running in enumerate(sums) if running >= draw)))
    return ordered


# -- the URI ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    """RFC 3263 §4: what resolution needs from the URI."""

    secure: bool  # sips:
    host: str  # TARGET: maddr or host, lower case, without brackets
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None  # TARGET when it is numeric
    port: int | None
    transport: str | None  # the transport parameter, lower case


def _split_uri(uri: str) -> tuple[str, str, int | None, dict[str, str | None]]:
    """The scheme, host, port and parameters of a SIP URI given as text; enough of RFC 3261 §25.1 for resolving.

    SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]. The userinfo ends at the last "@" (its
    own "@" must be escaped); the headers start at the first "?" after it.
    """
    scheme, colon, rest = uri.strip().partition(":")
    if not colon:
        raise ValueError(f"not a SIP URI: {uri!r}")
    rest = rest.rpartition("@")[2].partition("?")[0]
    hostport, *raw_params = rest.split(";")
    params: dict[str, str | None] = {}
    for raw in raw_params:
        name, eq, value = raw.partition("=")
        params[name.strip().lower()] = value.strip() if eq else None
    host, port = _split_hostport(hostport, uri)
    return scheme, host, port, params


def _split_hostport(hostport: str, uri: str) -> tuple[str, int | None]:
    """hostport = host [ ":" port ], where an IPv6 host is in brackets (RFC 3261 §25.1)."""
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"bad IPv6 reference in {uri!r}")
        port_text = after[1:] if after else None
    else:
        if hostport.count(":") > 1:
            raise ValueError(f"an IPv6 address must be in brackets in {uri!r}")
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
    if not host:
        raise ValueError(f"no host in {uri!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} in {uri!r}")
    return host, int(port_text)


def _target_of(uri: str | SipUriLike) -> _Target:
    """Read `uri` as text, or as any parsed URI with ``scheme``, ``host``, ``port`` and ``params``."""
    if isinstance(uri, str):
        scheme, host, port, params = _split_uri(uri)
        maddr, transport = params.get("maddr"), params.get("transport")
    else:
        scheme, host, port = str(uri.scheme), str(uri.host), uri.port
        maddr, transport = _param(uri.params, "maddr"), _param(uri.params, "transport")
    scheme = scheme.lower()
    if scheme not in ("sip", "sips"):
        raise ValueError(f"not a sip: or sips: URI: {uri!r}")
    target = (maddr or host).strip().lower()
    if target.startswith("[") and target.endswith("]"):
        target = target[1:-1]
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(target)
    except ValueError:
        address = None
    return _Target(
        secure=scheme == "sips",
        host=target,
        address=address,
        port=port,
        transport=transport.lower() if transport else None,
    )


def _param(params: ParamsLike | Mapping[str, str | None] | None, name: str) -> str | None:
    if params is None:
        return None
    if isinstance(params, Mapping):  # a plain dict is case-sensitive; parameter names are not
        return next((value for key, value in params.items() if str(key).lower() == name), None)
    return params.get(name)


def _param_transport(target: _Target) -> str:
    """The transport a ``transport`` parameter asks for (RFC 3263 §4.1, first paragraph).

    A SIPS URI is TLS over TCP, so ``transport=tcp`` there means TLS and ``transport=udp`` is impossible;
    ``transport=tls`` is the RFC 2543 spelling, still seen.
    """
    value = target.transport
    if value == "udp" and target.secure:
        raise ResolveError(target.host, "a sips: URI cannot use transport=udp (there is no TLS over UDP)")
    if value == "udp":
        return "UDP"
    if value == "tcp":
        return "TLS" if target.secure else "TCP"
    if value == "tls":
        return "TLS"
    raise ResolveError(target.host, f"transport={value} is not supported")


def _srv_name(domain: dns.name.Name, transport: str) -> dns.name.Name:
    return dns.name.from_text(_SRV_PREFIX[transport], origin=domain)


def _domain_name(host: str) -> dns.name.Name:
    try:
        return dns.name.from_text(host)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise ResolveError(host, f"not a valid domain name ({exc})") from exc


# -- the DNS side ---------------------------------------------------------------------------------------------


class _LookupFailed(Exception):
    """A DNS query that got no usable answer (as opposed to an answer saying the records do not exist)."""

    def __init__(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, reason: str) -> None:
        super().__init__(f"{dns.rdatatype.to_text(rdtype)} lookup of {name.to_text(omit_final_dot=True)} {reason}")


class _Cache:
    """DNS records by (name, type) until their TTL runs out; the oldest entry goes first when full."""

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[_Key, tuple[float, _Records]] = OrderedDict()

    def get(self, key: _Key) -> _Records | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: _Key, records: _Records, ttl: float) -> None:
        if ttl <= 0 or self._size <= 0:
            return
        self._entries[key] = (self._clock() + ttl, records)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def _ttl(response: dns.message.Message, positive: bool) -> float:
    """How long an answer may be kept. RFC 2308 §5: a negative answer without an SOA is not cached."""
    if not isinstance(response, dns.message.QueryMessage):
        return 0
    if not positive and not any(rrset.rdtype == _SOA for rrset in response.authority):
        return 0
    try:
        return float(response.resolve_chaining().minimum_ttl)
    except dns.exception.DNSException:  # an inconsistent response: use it once, keep nothing
        return 0


def _merge(outcomes: Sequence[list[ResolvedTarget] | BaseException]) -> list[ResolvedTarget]:
    """Join the targets of parallel branches. A failed branch is skipped if another one produced targets (the
    caller has something to try), and raised if none did."""
    targets: list[ResolvedTarget] = []
    failure: _LookupFailed | None = None
    for outcome in outcomes:
        if isinstance(outcome, _LookupFailed):
            failure = failure or outcome
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            targets.extend(outcome)
    if failure is not None and not targets:
        raise failure
    return targets


async def _branches(coros: Iterable[Awaitable[list[ResolvedTarget]]]) -> list[ResolvedTarget]:
    return _merge(await asyncio.gather(*coros, return_exceptions=True))


class Resolver:
    """RFC 3263 resolution over dnspython's asyncio stub resolver, with a small TTL-respecting cache.

    `nameservers` are IP addresses (None: the system's, from /etc/resolv.conf) and `port` their port.
    `supported` lists our transports in order of preference; that order is used where the client chooses
    (SRV without NAPTR). `timeout` bounds each DNS query. `ip_versions` lists the address families to look
    up, preferred first. `rng` and `clock` can be injected so that tests are repeatable.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        *,
        supported: Sequence[str] = TRANSPORTS,
        timeout: float = 2.0,
        cache: bool = True,
        cache_size: int = 1024,
        ip_versions: Sequence[int] = (4, 6),
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.supported = tuple(t.upper() for t in supported)
        if not self.supported or set(self.supported) - set(TRANSPORTS):
            raise ValueError(f"supported transports must be among {TRANSPORTS}, got {tuple(supported)}")
        if not ip_versions or set(ip_versions) - {4, 6}:
            raise ValueError(f"ip_versions must be among (4, 6), got {tuple(ip_versions)}")
        self._address_types = tuple(_A if v == 4 else _AAAA for v in ip_versions)
        self._dns = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._dns.nameservers = list(nameservers)
        self._dns.port = port
        self._dns.timeout = timeout
        self._dns.lifetime = timeout
        self._rng = rng or random.Random()
        self._cache = _Cache(cache_size, clock) if cache else None
        self._inflight: dict[_Key, asyncio.Future[_Records]] = {}

    def clear_cache(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    async def resolve(self, uri: str | SipUriLike, *, default_transport: str | None = None) -> list[ResolvedTarget]:
        """The targets for `uri`, in the order to try them (RFC 3263 §4).

        `default_transport` replaces UDP where RFC 3263 says "UDP for a SIP URI" (no transport parameter,
        numeric host or explicit port, or no SRV records), for instance TCP for a request larger than the path
        MTU (RFC 3261 §18.1.1); without NAPTR records it is also the first transport tried. A sips: URI always
        uses TLS. Raises `ResolveError` when nothing is found and `ValueError` for a URI that is not SIP.
        """
        target = _target_of(uri)
        try:
            targets = await self._resolve(target, default_transport)
        except _LookupFailed as exc:
            raise ResolveError(target.host, str(exc)) from exc
        unique = list(dict.fromkeys(targets))  # the same server reached through two records: keep the first
        if not unique:
            raise ResolveError(target.host, "no SIP server found in DNS")
        return unique

    # -- RFC 3263 §4.1 and §4.2 -------------------------------------------------------------------------------

    async def _resolve(self, target: _Target, default_transport: str | None) -> list[ResolvedTarget]:
        domain = target.host
        allowed = self._allowed(target)
        fallback = self._fallback_transport(target, allowed, default_transport)
        explicit = self._check(domain, _param_transport(target)) if target.transport else None

        # §4.1: a numeric TARGET or an explicit port needs no DNS to pick the transport; §4.2: nor, with a
        # numeric TARGET, to pick the address.
        if target.address is not None:
            transport = explicit or fallback
            return [ResolvedTarget(transport, str(target.address), target.port or _DEFAULT_PORT[transport])]
        name = _domain_name(domain)
        if target.port is not None:
            return await self._addresses(name, explicit or fallback, target.port)
        # §4.2: a transport parameter but no port: SRV for that transport, else A/AAAA.
        if explicit is not None:
            return await self._srv_or_addresses(name, _srv_name(name, explicit), explicit)

        # §4.1: NAPTR, most preferred first; each names the SRV record of its transport.
        services = await self._naptr(name, allowed)
        if services:
            return await _branches(self._srv_or_addresses(name, srv, transport) for transport, srv in services)

        # §4.1, last paragraphs: no NAPTR, so one SRV query per transport; a transport is offered if it answers.
        order = [fallback, *(t for t in allowed if t != fallback)] if default_transport else allowed
        found = await asyncio.gather(*(self._lookup(_srv_name(name, t), _SRV) for t in order), return_exceptions=True)
        offered = [(t, r) for t, r in zip(order, found, strict=True) if not isinstance(r, BaseException) and r]
        if offered:
            return await _branches(self._srv_targets(t, r) for t, r in offered)
        for outcome in found:  # no SRV records: a failed query is an error, not a reason to guess
            if isinstance(outcome, BaseException):
                raise outcome
        # §4.2: no SRV records at all: the domain's A/AAAA at the default port.
        return await self._addresses(name, fallback, _DEFAULT_PORT[fallback])

    def _allowed(self, target: _Target) -> tuple[str, ...]:
        """Our transports that `target` may use: a SIPS URI needs TLS (RFC 3263 §4.1, "MUST discard")."""
        allowed = tuple(t for t in self.supported if t == "TLS" or not target.secure)
        if not allowed:
            raise ResolveError(target.host, "a sips: URI needs TLS, which this resolver does not support")
        return allowed

    def _fallback_transport(self, target: _Target, allowed: Sequence[str], requested: str | None) -> str:
        """The transport when neither the URI nor DNS chooses one: UDP for sip:, TLS for sips: (§4.1)."""
        if requested is not None and requested.upper() not in TRANSPORTS:
            raise ValueError(f"default_transport must be one of {TRANSPORTS}, got {requested!r}")
        if target.secure:
            return "TLS"
        if requested is not None:
            return self._check(target.host, requested.upper())
        return "UDP" if "UDP" in allowed else allowed[0]

    def _check(self, domain: str, transport: str) -> str:
        if transport not in self.supported:
            raise ResolveError(domain, f"transport {transport} is not supported")
        return transport

    async def _naptr(self, name: dns.name.Name, allowed: Sequence[str]) -> list[tuple[str, dns.name.Name]]:
        """The usable SIP NAPTR records as (transport, SRV name), in order then preference (RFC 3403 §4.1).

        A record is usable if its flag is "s" (the replacement is an SRV name) and its service maps to a
        transport in `allowed`. A domain that publishes SIP services, none of them usable by us, has said how
        it can be reached: that raises, rather than falling back to SRV and A records it did not offer.
        """
        records = [r for r in await self._lookup(name, _NAPTR) if isinstance(r, dns.rdtypes.IN.NAPTR.NAPTR)]
        usable: list[tuple[str, dns.name.Name]] = []
        sip_services: list[str] = []
        for record in sorted(records, key=lambda r: (r.order, r.preference)):
            service = record.service.lower()
            if service.startswith((b"sip+", b"sips+")):
                sip_services.append(record.service.decode(errors="replace"))
            transport = _NAPTR_SERVICE.get(service)
            if (
                record.flags.lower() == b"s"
                and transport is not None
                and transport in allowed
                and record.replacement != dns.name.root
            ):
                usable.append((transport, record.replacement))
        if sip_services and not usable:
            offered = ", ".join(dict.fromkeys(sip_services))
            raise ResolveError(name.to_text(omit_final_dot=True), f"offers only SIP services we cannot use: {offered}")
        return usable

    async def _srv_or_addresses(
        self, domain: dns.name.Name, srv_name: dns.name.Name, transport: str
    ) -> list[ResolvedTarget]:
        """§4.2: the SRV records at `srv_name`; without any, the domain's A/AAAA at the default port."""
        records = await self._lookup(srv_name, _SRV)
        if records:
            return await self._srv_targets(transport, records)
        return await self._addresses(domain, transport, _DEFAULT_PORT[transport])

    async def _srv_targets(self, transport: str, records: _Records) -> list[ResolvedTarget]:
        """§4.3 / RFC 2782: the SRV records in order, each target looked up. A target of "." means that the
        service is decidedly not available there."""
        srvs = [r for r in records if isinstance(r, dns.rdtypes.IN.SRV.SRV) and r.target != dns.name.root]
        return await _branches(
            self._addresses(r.target, transport, r.port, r.priority, r.weight) for r in order_srv(srvs, self._rng)
        )

    async def _addresses(
        self, name: dns.name.Name, transport: str, port: int, priority: int = 0, weight: int = 0
    ) -> list[ResolvedTarget]:
        """A and AAAA records of `name`, in our order of address families."""
        lookups = await asyncio.gather(*(self._lookup(name, t) for t in self._address_types), return_exceptions=True)
        return _merge(
            [
                records
                if isinstance(records, BaseException)
                else [
                    ResolvedTarget(transport, r.address, port, priority, weight)
                    for r in records
                    if isinstance(r, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA)
                ]
                for records in lookups
            ]
        )

    # -- one DNS query ---------------------------------------------------------------------------------------

    async def _lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Records:
        """The records of one type at one name; empty if DNS says there are none. Raises `_LookupFailed`."""
        key = (name, rdtype)
        if self._cache is not None and (cached := self._cache.get(key)) is not None:
            return cached
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._query(name, rdtype))
            self._inflight[key] = pending
            pending.add_done_callback(functools.partial(self._landed, key))
        return await asyncio.shield(pending)

    def _landed(self, key: _Key, pending: asyncio.Future[_Records]) -> None:
        del self._inflight[key]
        if not pending.cancelled():
            pending.exception()  # retrieved: a failure that no waiter is left to see is not an error

    async def _query(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Records:
        try:
            answer = await self._dns.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN as exc:
            records: _Records = ()
            response = exc.responses().get(name)  # type: ignore[no-untyped-call]  # dnspython leaves it untyped
        except dns.resolver.LifetimeTimeout as exc:
            raise _LookupFailed(name, rdtype, "timed out") from exc
        except dns.resolver.NoNameservers as exc:
            raise _LookupFailed(name, rdtype, "failed: no server gave an answer (SERVFAIL or REFUSED)") from exc
        except dns.exception.DNSException as exc:
            raise _LookupFailed(name, rdtype, f"failed: {exc}") from exc
        else:
            records = tuple(answer.rrset) if answer.rrset is not None else ()
            response = answer.response
        if self._cache is not None and response is not None:
            self._cache.put((name, rdtype), records, _ttl(response, bool(records)))
        return records
