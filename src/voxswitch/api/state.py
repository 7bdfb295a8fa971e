"""What the HTTP layer holds for the life of the process, built once from `Settings`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fastapi import Request

from voxswitch import __version__
from voxswitch.api.ratelimit import RateLimiter
from voxswitch.config import Settings
from voxswitch.engine.runtime import Engine
from voxswitch.jobs.policy import RetryPolicy
from voxswitch.jobs.store import JobStore
from voxswitch.jobs.voice import KIND as VOICE_JOBS
from voxswitch.jobs.webhooks import WebhookSender
from voxswitch.jobs.worker import VoiceWorker, WorkerConfig, default_node
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
from voxswitch.services.voice_calls import VoiceCallService
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
    voice: VoiceCallService
    voice_worker: VoiceWorker
    webhooks: WebhookSender
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
        jobs = JobStore(db, VOICE_JOBS)
        webhook_secret = load_or_create_secret(
            settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
            settings.data_dir,
            "webhook.key",
        )
        webhooks = WebhookSender(
            jobs,
            webhook_secret,
            max_attempts=settings.webhook_max_attempts,
            timeout=settings.webhook_timeout_seconds,
            poll_seconds=settings.voice_poll_seconds,
        )
        worker = VoiceWorker(jobs, engine, worker_config(settings), webhooks)
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
            voice=VoiceCallService(jobs, settings, wake=worker.wake),
            voice_worker=worker,
            webhooks=webhooks,
        )

    @property
    def uptime_seconds(self) -> int:
        return int(time.monotonic() - self.started_monotonic)


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        node=settings.node_name or default_node(settings.data_dir),
        concurrency=settings.voice_concurrency,
        calls_per_second=settings.voice_calls_per_second,
        ring_seconds=settings.voice_ring_seconds,
        lease_seconds=settings.voice_lease_seconds,
        poll_seconds=settings.voice_poll_seconds,
        drain_seconds=settings.voice_drain_seconds,
        policy=RetryPolicy(
            busy=settings.voice_retry_busy,
            no_answer=settings.voice_retry_no_answer,
            failed=settings.voice_retry_failed,
            backoff_seconds=settings.voice_retry_backoff_seconds,
            backoff_max_seconds=settings.voice_retry_backoff_max_seconds,
        ),
    )


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.vox
    return state
