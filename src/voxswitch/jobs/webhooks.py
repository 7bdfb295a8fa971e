"""StatusCallback deliveries: each job state POSTed to the client's URL, signed, retried until sent.

A delivery row is written in the same transaction as the state it reports (store.py), so a crash
between the two cannot lose one; this loop sends what is due, oldest first and one at a time per
job so a client sees `dialing` before `completed`. Each POST is signed like Stripe's:

    X-Voxswitch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A client checks the HMAC with the shared secret (`VOXSWITCH_WEBHOOK_SECRET`) and rejects old `t`
values to stop replays. A 2xx is delivered; anything else (or no answer) is retried with doubling
waits up to `webhook_max_attempts`, then the row is kept as `failed` with the last error.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from datetime import timedelta

import httpx

from voxswitch.jobs.store import JobStore
from voxswitch.store.models import WebhookDelivery, utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Voxswitch-Signature"


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, tolerance: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does with the header (kept here so tests and docs use one definition)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


class WebhookSender:
    LEASE_SECONDS = 60.0
    BATCH = 20

    def __init__(
        self,
        store: JobStore,
        secret: bytes,
        *,
        max_attempts: int = 8,
        timeout: float = 5.0,
        poll_seconds: float = 1.0,
        backoff_seconds: float = 2.0,
        backoff_max_seconds: float = 300.0,
    ) -> None:
        self.store = store
        self.secret = secret
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.sent = 0
        self.failed = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            try:
                due = await self.store.due_deliveries(self.BATCH, self.LEASE_SECONDS)
            except Exception:
                log.exception("could not read webhook deliveries")
                due = []
            if due:
                await asyncio.gather(*(self._send(d) for d in due))
                continue  # more may be due now that these are out of the way
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    async def _send(self, delivery: WebhookDelivery) -> None:
        assert self._client is not None
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Voxswitch-Webhooks",
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
        }
        error: str | None = None
        try:
            response = await self._client.post(delivery.url, content=body, headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" or type(exc).__name__
        attempts = delivery.attempts + 1
        retry_at = None
        if error is not None and attempts < self.max_attempts:
            wait = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempts - 1))
            retry_at = utcnow() + timedelta(seconds=wait)
        if error is None:
            self.sent += 1
        elif retry_at is None:
            self.failed += 1
            log.warning("webhook gave up after %d attempts: %s", attempts, error, extra={"job_id": delivery.job_id})
        await self.store.delivery_done(delivery.id, ok=error is None, error=error, retry_at=retry_at)
