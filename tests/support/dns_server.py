"""A small authoritative DNS server on loopback UDP, for tests of code that speaks DNS.

It serves a zone given as a dict, ``{"example.com": ["NAPTR 50 50 \"s\" \"SIPS+D2T\" \"\" _sips._tcp.example.com",
"300 A 192.0.2.1"]}`` (owner name to records, each ``[TTL] [IN] TYPE RDATA``; all names are absolute, with or
without the final dot), and answers as a real authoritative server would: the records with the AA flag, an
empty answer with the SOA for a name that exists without that type (including empty non-terminals such as
``_tcp.example.com``), NXDOMAIN with the SOA for a name that does not exist. The SOA gives negative answers a
TTL (RFC 2308). It records every question it is asked, can be told to answer some with an error rcode or not
at all, and serves UDP only (a response too large for the client's buffer is sent truncated).

Use it in a test's event loop: ``async with LocalDnsServer(zone) as server:``, then ask ``server.host`` and
``server.port``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

Zone = Mapping[str, Iterable[str]]

_RECORD = re.compile(r"\s*(?:(?P<ttl>\d+)\s+)?(?:IN\s+)?(?P<type>[A-Za-z][A-Za-z0-9]*)\s+(?P<rdata>.*\S)\s*$", re.I)


def records_from_master_file(path: str | Path) -> dict[str, list[str]]:
    """Read a zone in master-file format (RFC 1035 §5) into the dict `LocalDnsServer` serves.

    The file sets its own ``$ORIGIN``; it needs no SOA or NS records.
    """
    zone = dns.zone.from_file(str(path), relativize=False, check_origin=False)
    records: dict[str, list[str]] = {}
    for name, ttl, rdata in zone.iterate_rdatas():
        records.setdefault(name.to_text(), []).append(f"{ttl} {dns.rdatatype.to_text(rdata.rdtype)} {rdata.to_text()}")
    return records


class LocalDnsServer:
    """Answers DNS queries for `zone` on `host` (a free UDP port); see the module docstring."""

    def __init__(self, zone: Zone, *, host: str = "127.0.0.1", default_ttl: int = 300, negative_ttl: int = 60) -> None:
        self.host = host
        self.port = 0
        self.default_ttl = default_ttl
        # (name without final dot, lower case, TYPE) of every question, in arrival order
        self.queries: list[tuple[str, str]] = []
        # questions answered with this rcode instead (SERVFAIL, REFUSED...), by (name, TYPE)
        self.rcodes: dict[tuple[str, str], dns.rcode.Rcode] = {}
        # questions left unanswered, so that the client times out
        self.silent: set[tuple[str, str]] = set()
        self._soa = dns.rrset.from_text(
            dns.name.root,
            negative_ttl,
            "IN",
            "SOA",
            f"localhost. hostmaster.localhost. 1 3600 600 86400 {negative_ttl}",
        )
        self._rrsets: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        self._names: set[dns.name.Name] = set()
        self.errors: list[Exception] = []  # raised while answering; re-raised at exit
        self._transport: asyncio.DatagramTransport | None = None
        self.load(zone)

    def load(self, zone: Zone) -> None:
        """Serve `zone` from now on, in place of what was served before."""
        rrsets: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        for owner, texts in zone.items():
            name = dns.name.from_text(owner)
            for text in texts:
                match = _RECORD.match(text)
                if match is None:
                    raise ValueError(f"not a record: {text!r} (want '[TTL] [IN] TYPE RDATA')")
                rdtype = dns.rdatatype.from_text(match["type"])
                ttl = int(match["ttl"]) if match["ttl"] else self.default_ttl
                rdata = dns.rdata.from_text(
                    dns.rdataclass.IN, rdtype, match["rdata"], origin=dns.name.root, relativize=False
                )
                rrset = rrsets.setdefault((name, rdtype), dns.rrset.RRset(name, dns.rdataclass.IN, rdtype))
                rrset.add(rdata, ttl)
        self._rrsets = rrsets
        self._names = {name for name, _ in rrsets}

    def count(self, name: str | None = None, rdtype: str | None = None) -> int:
        """How many questions were asked, for `name` and/or `rdtype` if given."""
        name = name.rstrip(".").lower() if name is not None else None
        return sum(
            1
            for qname, qtype in self.queries
            if (name is None or qname == name) and (rdtype is None or qtype == rdtype.upper())
        )

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to `query`, or None to stay silent."""
        response = dns.message.make_response(query)
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        key = (name.to_text(omit_final_dot=True).lower(), dns.rdatatype.to_text(rdtype))
        self.queries.append(key)
        if key in self.silent:
            return None
        if key in self.rcodes:
            response.set_rcode(self.rcodes[key])
            return response
        response.flags |= dns.flags.AA
        rrset = self._rrsets.get((name, rdtype))
        if rrset is not None:
            response.answer.append(rrset)
        elif any(owner.is_subdomain(name) for owner in self._names):
            response.authority.append(self._soa)  # NODATA: the name exists (maybe as an empty non-terminal)
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa)
        return response

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=(self.host, 0))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self.errors and exc is None:
            raise RuntimeError("the local DNS server failed to answer") from self.errors[0]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: LocalDnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # the selector loop's is not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # not DNS: a real server drops it too
        try:
            response = self.server.answer(query)
        except Exception as exc:  # a bug in the test server: fail fast, and again at exit
            self.server.errors.append(exc)
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
        if response is None or self.transport is None:
            return
        max_size = query.payload if query.edns >= 0 else 512
        try:
            wire = response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            response.flags |= dns.flags.TC
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            wire = response.to_wire(max_size=max_size)
        self.transport.sendto(wire, addr)
