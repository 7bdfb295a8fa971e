"""The one ASGI middleware every HTTP request passes: request id, rate limit, metrics, access log.

Kept as plain ASGI (not Starlette's BaseHTTPMiddleware) so it adds microseconds, not a task per
request. It is also the last line of defence: an exception that escapes a route becomes a 500 in
the surface's shape carrying the request id, logged with its traceback, never shown to the client.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxswitch.api.errors import error_response
from voxswitch.api.ratelimit import cookie_key, group_for
from voxswitch.api.surfaces import surface_for_path
from voxswitch.errors import ErrorKind, VoxError
from voxswitch.logs import request_id_var
from voxswitch.services.credentials import API_KEY_PREFIX

if TYPE_CHECKING:
    from voxswitch.api.state import AppState

log = logging.getLogger("voxswitch.http")
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestMiddleware:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _GOOD_ID.match(incoming) else f"req_{uuid.uuid4()}"
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        surface = surface_for_path(path)
        started = time.perf_counter()
        status = 0
        extra_headers: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode())]

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra_headers]}
            await send(message)

        try:
            if scope["type"] == "http" and self.state.settings.rate_limits_enabled:
                group = group_for(surface, path)
                if group is not None:
                    verdict = await self.state.limiter.hit(group, self._client_key(scope, headers))
                    extra_headers.extend(verdict.headers())
                    if not verdict.allowed:
                        retry = max(1, verdict.reset - int(time.time()))
                        err = VoxError(
                            ErrorKind.RATE_LIMITED,
                            "Rate limit exceeded",
                            details=f"{verdict.limit} requests allowed per window for {group}; retry in {retry}s",
                            headers={"Retry-After": str(retry)},
                        )
                        await error_response(path, err)(scope, receive, send_wrapper)
                        return
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception as exc:
                log.error("unhandled error on %s %s", scope.get("method", "WS"), path, exc_info=exc)
                if status == 0 and scope["type"] == "http":
                    status = 500
                    await error_response(path, VoxError(ErrorKind.INTERNAL, "Internal server error"))(
                        scope, receive, send_wrapper
                    )
        finally:
            elapsed = time.perf_counter() - started
            if scope["type"] == "http":
                self.state.metrics.observe_request(surface.value, scope["method"], status or 500, elapsed)
                if status >= 500:
                    log.error("%s %s -> %d", scope["method"], path, status, extra={"duration_ms": elapsed * 1e3})
                elif log.isEnabledFor(logging.DEBUG):
                    log.debug("%s %s -> %d", scope["method"], path, status, extra={"duration_ms": elapsed * 1e3})
            request_id_var.reset(token)

    def _client_key(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        """Who a limit counts against: the user of a valid token, an API key, a cookie, else the IP."""
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
            if token.startswith(API_KEY_PREFIX):
                return "key:" + token[len(API_KEY_PREFIX) : len(API_KEY_PREFIX) + 12]
            subject = self.state.tokens.subject_of(token)
            if subject:
                return "user:" + subject
        cookie = _cookie(headers.get(b"cookie", b"").decode("latin-1"), self.state.settings.session_cookie_name)
        if cookie:
            return cookie_key(cookie)
        client = scope.get("client")
        return "ip:" + (client[0] if client else "unknown")


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None
