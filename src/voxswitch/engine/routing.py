"""Which app runs an incoming call: the engine's default routing, and the seam the PBX fills.

A `Router` looks at an authenticated (or trusted) INVITE and answers a `Route` (an app and its
parameters) or a `Refusal` (a SIP status, and no call record). The default rules, in order: the
dialled user names an app; it names a device (put through to it); it is a number and a trunk is
configured (a device calls out, or a trusted peer such as a SIP front end hands us a call to
place; never a call that came from the trunk itself). The PBX's DIDs and routes (issue #6) plug in as another `Router`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from voxswitch.engine.apps import APPS, App
from voxswitch.engine.builtin_apps import connect
from voxswitch.engine.targets import Targets, is_number
from voxswitch.sip.message import Request


@dataclass(frozen=True)
class Incoming:
    dialled: str  # the Request-URI's user part
    caller: str  # the caller's number or username (From's user part, or the device's account)
    device: str | None  # the SIP account that authenticated the INVITE, if any
    trusted: bool  # from a trusted source (the trunk's address) instead of a device
    invite: Request
    source: tuple[str, int] = ("", 0)  # where the INVITE came from


@dataclass(frozen=True)
class Route:
    app: App
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    direction: str = "inbound"  # for the call record: inbound, outbound, internal
    did: str | None = None  # the DID called, when the PBX routed it
    route_id: int | None = None  # the PBX route taken


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


class Router(Protocol):
    async def route(self, incoming: Incoming) -> Route | Refusal: ...


class DefaultRouter:
    def __init__(self, targets: Targets, apps: dict[str, App] | None = None) -> None:
        self.targets = targets
        self.apps = APPS if apps is None else apps

    async def route(self, incoming: Incoming) -> Route | Refusal:
        dialled = incoming.dialled
        if dialled in self.apps:
            return Route(self.apps[dialled], dialled)
        if self.targets.is_device(dialled):
            return Route(connect, "connect", {"target": dialled}, direction="internal")
        trunk = self.targets.trunk
        from_trunk = trunk is not None and incoming.source == (trunk.config.host, trunk.config.port)
        if is_number(dialled) and trunk is not None and (incoming.device or not from_trunk):
            # never send the trunk's own calls back out through it (a loop, and toll fraud)
            return Route(connect, "connect", {"target": dialled}, direction="outbound")
        return Refusal(404, "Not Found")
