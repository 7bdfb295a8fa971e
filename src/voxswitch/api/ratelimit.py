"""Per-surface, per-group rate limits with the documents' `X-RateLimit-*` headers.

Groups and figures come from the documents where they give them (softphone: calls 10/min, general
100/min, admin 50/min per user; agents: auth 10/min, general 100/min; callbot: 100, 60 and 10 per
minute per IP). Where a document is silent (PBX, voice-call) the figures below are our choice and
every one can be overridden with `VOXSWITCH_RATE_LIMITS='{"pbx.general": "300/minute"}'`.
Counters live in memory, or in Redis when `REDIS_URL` is set so several nodes share them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

from voxswitch.api.surfaces import Surface

DEFAULT_LIMITS: dict[str, str] = {
    "softphone.call": "10/minute",
    "softphone.admin": "50/minute",
    "softphone.general": "100/minute",
    "agents.auth": "10/minute",
    "agents.general": "100/minute",
    "callbot.callbot": "100/minute",
    "callbot.logs": "60/minute",
    "callbot.test": "10/minute",
    "pbx.auth": "10/minute",
    "pbx.general": "600/minute",
    "pbx.sync": "10/minute",  # each one is a round of requests to Twilio
    "voice.general": "60000/minute",
}

# Probes and documentation are never limited: a load balancer must always get its answer.
EXEMPT = frozenset(
    {
        "/health",
        "/api/health",
        "/api/ready",
        "/api/live",
        "/readiness",
        "/status",
        "/metrics",
        "/openapi.json",
    }
)
_PBX_AUTH = ("/api/auth/login", "/api/setup/complete")


def group_for(surface: Surface, path: str) -> str | None:
    """The rate-limit group of a request, or None when it is not limited."""
    if path in EXEMPT or path.startswith(("/docs", "/redoc")):
        return None
    if surface is Surface.SOFTPHONE:
        if path.startswith("/api/v1/call") and not path.startswith("/api/v1/call-history"):
            return "softphone.call"
        if path.startswith("/api/v1/admin/"):
            return "softphone.admin"
        return "softphone.general"
    if surface is Surface.AGENTS:
        return "agents.auth" if path.startswith("/auth/") else "agents.general"
    if surface is Surface.CALLBOT:
        if path.startswith("/api/logs/"):
            return "callbot.logs"
        if path.startswith("/api/test/"):
            return "callbot.test"
        return "callbot.callbot"
    if surface is Surface.PBX:
        if path.startswith("/api/provision/") or path.startswith("/api/webhooks/"):
            return "pbx.general"
        if path == "/api/dids/sync":
            return "pbx.sync"
        return "pbx.auth" if path in _PBX_AUTH else "pbx.general"
    return "voice.general"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


class RateLimiter:
    def __init__(self, overrides: dict[str, str], redis_url: str | None = None) -> None:
        merged = {**DEFAULT_LIMITS, **overrides}
        self.items: dict[str, RateLimitItem] = {group: parse(text) for group, text in merged.items()}
        self.storage: Storage
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self.storage = RedisStorage(uri, implementation="redispy")
        else:
            self.storage = MemoryStorage()
        self._strategy = FixedWindowRateLimiter(self.storage)

    async def hit(self, group: str, key: str) -> Verdict:
        item = self.items[group]
        allowed = await self._strategy.hit(item, group, key)
        stats = await self._strategy.get_window_stats(item, group, key)
        return Verdict(allowed, item.amount, max(0, stats.remaining), int(stats.reset_time) or int(time.time()))

    async def check(self) -> bool:
        return bool(await self.storage.check())

    async def reset(self) -> None:
        await self.storage.reset()


def cookie_key(value: str) -> str:
    return "cookie:" + hashlib.sha256(value.encode()).hexdigest()[:16]
