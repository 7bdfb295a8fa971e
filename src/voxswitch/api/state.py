"""What the HTTP layer holds for the life of the process, built once from `Settings`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fastapi import Request

from voxswitch import __version__
from voxswitch.api.ratelimit import RateLimiter
from voxswitch.config import Settings
from voxswitch.engine.runtime import Engine
from voxswitch.logs import LogBuffer
from voxswitch.metrics import Metrics
from voxswitch.services.blocklist import BlocklistService
from voxswitch.services.cdrs import CdrService
from voxswitch.services.credentials import AccessTokens, Passwords, load_or_create_secret
from voxswitch.services.devices import DeviceService
from voxswitch.services.dids import DidService
from voxswitch.services.identity import IdentityService
from voxswitch.services.oauth import OAuthClient
from voxswitch.services.routes import RouteService
from voxswitch.services.status import StatusService
from voxswitch.services.system_config import SystemConfigService
from voxswitch.services.system_status import SystemStatusService
from voxswitch.store.database import Database, normalise_url


@dataclass
class AppState:
    settings: Settings
    db: Database
    tokens: AccessTokens
    identity: IdentityService
    oauth: OAuthClient
    limiter: RateLimiter
    metrics: Metrics
    logs: LogBuffer
    status: StatusService
    engine: Engine
    devices: DeviceService
    dids: DidService
    routes: RouteService
    cdrs: CdrService
    blocklist: BlocklistService
    system_config: SystemConfigService
    system_status: SystemStatusService
    version: str = __version__
    started_monotonic: float = field(default_factory=time.monotonic)

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        db = Database(
            normalise_url(settings.database_url, settings.data_dir),
            sqlite_synchronous=settings.sqlite_synchronous,
        )
        secret = load_or_create_secret(
            settings.secret_key.get_secret_value() if settings.secret_key else None, settings.data_dir
        )
        tokens = AccessTokens(secret, settings.access_token_ttl_seconds)
        passwords = Passwords(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)
        identity = IdentityService(
            db,
            passwords,
            tokens,
            refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
            default_can_call=settings.default_can_call,
            default_call_limit=settings.default_call_limit_per_day,
        )
        limiter = RateLimiter(settings.rate_limits, settings.redis_url)
        engine = Engine(settings, db, secret)
        devices = DeviceService(db, engine.accounts, settings.sip_realm, engine.bindings)
        system_config = SystemConfigService(db, settings)
        return cls(
            settings=settings,
            db=db,
            tokens=tokens,
            identity=identity,
            oauth=OAuthClient(settings),
            limiter=limiter,
            metrics=Metrics(),
            logs=LogBuffer(settings.log_buffer_lines),
            status=StatusService(db, settings.data_dir, limiter.check),
            engine=engine,
            devices=devices,
            dids=DidService(db),
            routes=RouteService(db),
            cdrs=CdrService(db, settings.timezone),
            blocklist=BlocklistService(db),
            system_config=system_config,
            system_status=SystemStatusService(settings, engine, devices, system_config),
        )

    @property
    def uptime_seconds(self) -> int:
        return int(time.monotonic() - self.started_monotonic)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.vox
    return state
