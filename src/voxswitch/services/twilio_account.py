"""The Twilio account the PBX's numbers come from, through the official `twilio` library.

Two uses: the account's IncomingPhoneNumbers (for `POST /api/dids/sync`) and a reachability probe
(for `/api/system/status`). The library's async HTTP client is given the configured API base URL
(`VOXSWITCH_TWILIO_API_BASE_URL`; tests point it at a local server speaking Twilio's REST API) and a
timeout on every request: its own async client ignores the timeout it is constructed with.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.api.v2010.account import AccountContext

from voxswitch.errors import ErrorKind, FieldProblem, VoxError

log = logging.getLogger(__name__)
TWILIO_API = "https://api.twilio.com"
CAPABILITIES = ("voice", "sms", "mms", "fax")
# The library logs every request and response header at INFO; ours keeps its warnings only.
_http_log = logging.getLogger("voxswitch.twilio.http")
_http_log.setLevel(logging.WARNING)


@dataclass(frozen=True)
class TwilioCredentials:
    account_sid: str
    auth_token: str
    source: str  # "config" (PUT /api/system/config), "environment", or "config+environment"


@dataclass(frozen=True)
class ProviderNumber:
    sid: str
    phone_number: str
    friendly_name: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Reachability:
    status: str  # "ok", "unauthorized", "error", "unreachable"
    reachable: bool
    http_status: int | None
    latency_ms: float
    error: str | None = None


class _TwilioHttp(AsyncTwilioHttpClient):
    """Twilio's async client, aimed at `base_url` and never without a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        # one pooled session per operation, closed by its owner: the library's per-request sessions
        # are left open when a request fails
        super().__init__(pool_connections=True, timeout=timeout, logger=_http_log)
        self.base_url = base_url.rstrip("/")

    def _aim(self, url: str) -> str:
        parts = urlsplit(url)
        if self.base_url == TWILIO_API or not parts.netloc.endswith("twilio.com"):
            return url
        return f"{self.base_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the library's signature)
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth is not None:  # aiohttp deprecates its BasicAuth, which the library would use
            pair = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return await super().request(
            method,
            self._aim(url),
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout or self.timeout,
            allow_redirects=allow_redirects,
        )


def _status_of(exc: TwilioException) -> int | None:
    if isinstance(exc, TwilioRestException):
        return int(exc.status)
    for arg in exc.args:  # a list page that is not 200 raises TwilioException(message, response)
        if isinstance(arg, Response):
            return int(arg.status_code)
    return None


class TwilioAccount:
    def __init__(self, credentials: TwilioCredentials, *, base_url: str = TWILIO_API, timeout: float = 5.0) -> None:
        self.credentials = credentials
        self.base_url = base_url
        self.timeout = timeout

    @asynccontextmanager
    async def _account(self) -> AsyncIterator[AccountContext]:
        """The account's resources, over an HTTP session that is closed whatever happens."""
        c = self.credentials
        http = _TwilioHttp(self.base_url, self.timeout)
        try:
            yield Client(c.account_sid, c.auth_token, http_client=http).api.v2010.accounts(c.account_sid)
        finally:
            await http.close()

    def _failure(self, exc: BaseException) -> VoxError:
        if isinstance(exc, TwilioException):
            status = _status_of(exc)
            if status in (401, 403):
                return VoxError(
                    ErrorKind.UNAVAILABLE,
                    f"Twilio rejected the account credentials (HTTP {status})",
                    [FieldProblem("twilio_auth_token", "rejected by Twilio")],
                )
            if status == 404:
                return VoxError(
                    ErrorKind.UNAVAILABLE,
                    "Twilio does not know this account (HTTP 404)",
                    [FieldProblem("twilio_account_sid", "unknown to Twilio")],
                )
            return VoxError(ErrorKind.UNAVAILABLE, f"Twilio answered HTTP {status or '?'}")
        return VoxError(ErrorKind.UNAVAILABLE, f"Twilio unreachable: {type(exc).__name__}")

    async def incoming_numbers(self) -> list[ProviderNumber]:
        """Every number of the account (IncomingPhoneNumbers, all pages)."""
        try:
            async with self._account() as account:
                records = await account.incoming_phone_numbers.list_async(page_size=100)
        except (TwilioException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("Twilio number list failed: %s", type(exc).__name__)
            raise self._failure(exc) from exc
        out = []
        for r in records:
            caps: Any = r.capabilities or {}
            names = tuple(k for k in CAPABILITIES if isinstance(caps, dict) and caps.get(k) is True)
            out.append(ProviderNumber(str(r.sid or ""), str(r.phone_number or ""), str(r.friendly_name or ""), names))
        return out

    async def probe(self) -> Reachability:
        """Fetch the account resource: reachable and accepted, reachable and refused, or neither."""
        started = time.monotonic()

        def elapsed() -> float:
            return round((time.monotonic() - started) * 1000, 1)

        try:
            async with self._account() as account:
                await asyncio.wait_for(account.fetch_async(), self.timeout + 1)
        except TwilioException as exc:
            status = _status_of(exc)
            kind = "unauthorized" if status in (401, 403) else "error"
            return Reachability(kind, True, status, elapsed(), f"HTTP {status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Reachability("unreachable", False, None, elapsed(), type(exc).__name__)
        return Reachability("ok", True, 200, elapsed())
