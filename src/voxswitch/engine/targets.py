"""What a dial string means: a registered device, a phone number through the trunk, or a SIP URI.

Resolution order: `sip:`/`sips:` URIs go where they say (RFC 3263); a SIP account's username rings
every live binding of that device (§10: several contacts per AOR, forked in parallel); a phone
number (E.164 `+` and digits, or a dialable string of digits) goes out through the trunk with its
credentials. Device usernames win over numbers, so an office's extension `1001` is the phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voxswitch.engine.accounts import AccountDirectory
from voxswitch.engine.registrar import BindingBook
from voxswitch.engine.sip_outbound import Destination
from voxswitch.engine.trunk import TrunkRegistration
from voxswitch.sip.errors import SipParseError
from voxswitch.sip.resolve import ResolveError, Resolver
from voxswitch.sip.transaction import Target
from voxswitch.sip.uri import SipUri, parse_uri

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
DIALABLE = re.compile(r"^[0-9*#]{2,20}$")


class TargetError(LookupError):
    """A dial string that cannot be called; `status` is the SIP answer that says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CallerId:
    user: str = "voxswitch"
    display_name: str | None = None


def is_number(text: str) -> bool:
    return bool(E164.match(text) or DIALABLE.match(text))


class Targets:
    def __init__(
        self,
        accounts: AccountDirectory,
        bindings: BindingBook | None,
        trunk: TrunkRegistration | None,
        resolver: Resolver | None = None,
    ) -> None:
        self.accounts = accounts
        self.bindings = bindings
        self.trunk = trunk
        self.resolver = resolver or Resolver()

    def is_device(self, name: str) -> bool:
        return self.accounts.get(name) is not None

    async def resolve(self, target: str, caller: CallerId | None = None) -> list[Destination]:
        """The destinations to ring in parallel for `target`; raises `TargetError`."""
        caller = caller or CallerId()
        target = target.strip()
        if target.lower().startswith(("sip:", "sips:")):
            return [await self._uri(target, caller)]
        if self.accounts.get(target) is not None:
            live = self.bindings.lookup(target) if self.bindings is not None else []
            if not live:
                raise TargetError(f"{target} is not registered", 480)
            return [
                Destination(
                    target=Target(b.transport, b.source_host, b.source_port),
                    request_uri=b.contact,
                    to_uri=f"sip:{target}@{b.source_host}",
                    label=target,
                    from_user=caller.user,
                    display_name=caller.display_name,
                    kind="device",
                )
                for b in live
            ]
        if is_number(target):
            return [await self._trunk(target, caller)]
        raise TargetError(f"no device, number or URI {target!r}", 404)

    async def _trunk(self, number: str, caller: CallerId) -> Destination:
        trunk = self.trunk
        if trunk is None:
            raise TargetError("no SIP trunk is configured for outside numbers", 503)
        config = trunk.config
        try:
            hop = await trunk.target()
        except (ResolveError, OSError) as exc:
            raise TargetError(f"trunk {config.host} cannot be resolved: {exc}", 503) from None
        domain = config.realm_domain
        return Destination(
            target=hop,
            request_uri=config.uri(number),
            to_uri=f"sip:{number}@{domain}",
            label=number,
            from_user=caller.user if caller.user != "voxswitch" else (config.username or caller.user),
            from_host=domain,
            display_name=caller.display_name,
            credentials=config.credentials(),
            kind="trunk",
        )

    async def _uri(self, text: str, caller: CallerId) -> Destination:
        try:
            uri = parse_uri(text)
        except SipParseError as exc:
            raise TargetError(f"not a SIP URI: {exc}", 400) from None
        if not isinstance(uri, SipUri):
            raise TargetError("not a SIP URI", 400)
        try:
            hops = await self.resolver.resolve(str(uri))
        except (ResolveError, OSError) as exc:
            raise TargetError(f"{uri.host} cannot be resolved: {exc}", 404) from None
        hop = hops[0]
        return Destination(
            target=Target(hop.transport, hop.host, hop.port),
            request_uri=str(uri),
            to_uri=str(uri),
            label=text,
            from_user=caller.user,
            display_name=caller.display_name,
            kind="uri",
        )
