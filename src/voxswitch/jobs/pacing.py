"""Calls per second per trunk: a token bucket each new INVITE waits on.

A trunk's provider caps call attempts per second (and bans or 503s above it); a burst of queued
calls must not exceed it. The bucket holds at most one second's worth, so after an idle spell the
first `rate` calls go at once and the rest are spaced 1/rate apart.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self) -> None:
        """Wait for one token; callers are served in arrival order."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._refill(now)
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)


class TrunkPacer:
    """One bucket per trunk (or per destination kind): the calls-per-second cap from config."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}

    async def acquire(self, key: str) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate)
        await bucket.acquire()
