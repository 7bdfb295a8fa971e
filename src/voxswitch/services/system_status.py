"""`/api/system/status`: what the PBX is doing now, read from the running engine (listeners,
registrar bindings, the trunk's registration, calls up) plus whether Twilio answers, probed with a
real request to its API (kept for a few seconds, so a dashboard polling the page does not turn
into a stream of requests to Twilio)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from voxswitch.config import Settings
from voxswitch.engine.runtime import Engine
from voxswitch.services.devices import DeviceService
from voxswitch.services.system_config import SystemConfigService

PROBE_TTL_SECONDS = 10.0


@dataclass(frozen=True)
class Listener:
    transport: str
    host: str
    port: int


@dataclass(frozen=True)
class TrunkStatus:
    host: str
    port: int
    transport: str
    registers: bool
    state: str
    last_error: str | None
    registered_until: datetime | None


@dataclass(frozen=True)
class TwilioStatus:
    configured: bool
    source: str | None = None
    status: str = "not_configured"  # ok, unauthorized, error, unreachable, not_configured
    reachable: bool | None = None
    http_status: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    checked_at: datetime | None = None


@dataclass(frozen=True)
class SystemStatus:
    sip_enabled: bool
    realm: str
    listeners: list[Listener]
    devices: int
    registered_devices: int
    bindings: int
    trunk: TrunkStatus | None
    active_calls: int
    twilio: TwilioStatus


class SystemStatusService:
    def __init__(self, settings: Settings, engine: Engine, devices: DeviceService, config: SystemConfigService) -> None:
        self.settings = settings
        self.engine = engine
        self.devices = devices
        self.config = config
        self._probe: tuple[str, float, TwilioStatus] | None = None

    async def twilio(self) -> TwilioStatus:
        account = await self.config.twilio()
        if account is None:
            return TwilioStatus(configured=False)
        c = account.credentials
        key = hashlib.sha256(f"{account.base_url}\0{c.account_sid}\0{c.auth_token}".encode()).hexdigest()
        if self._probe is not None and self._probe[0] == key and time.monotonic() - self._probe[1] < PROBE_TTL_SECONDS:
            return self._probe[2]
        r = await account.probe()
        status = TwilioStatus(
            configured=True,
            source=c.source,
            status=r.status,
            reachable=r.reachable,
            http_status=r.http_status,
            latency_ms=r.latency_ms,
            error=r.error,
            checked_at=datetime.now(UTC),
        )
        self._probe = (key, time.monotonic(), status)
        return status

    async def snapshot(self) -> SystemStatus:
        engine = self.engine
        live = engine.bindings.all()
        trunk = None
        if engine.trunk is not None:
            t = engine.trunk
            trunk = TrunkStatus(
                host=t.config.host,
                port=t.config.port,
                transport=t.config.transport,
                registers=t.config.register,
                state=t.state.value,
                last_error=t.last_error,
                registered_until=datetime.fromtimestamp(t.registered_until, UTC) if t.registered_until else None,
            )
        calls = engine.calls.calls if engine.calls is not None else {}
        return SystemStatus(
            sip_enabled=self.settings.sip_enabled,
            realm=self.settings.sip_realm,
            listeners=[Listener(k, h, p) for k, (h, p) in sorted(engine.listening.items())],
            devices=await self.devices.count(),
            registered_devices=len(live),
            bindings=sum(len(b) for b in live.values()),
            trunk=trunk,
            active_calls=sum(1 for c in calls.values() if not c.state.final),
            twilio=await self.twilio(),
        )
