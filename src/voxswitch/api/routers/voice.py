"""The voice-call API (voice-call-api.md): queue a text-to-speech call, bulk, status, metrics.

Thin: the body is read as plain JSON and handed to `VoiceCallService`, which names every bad field
itself (so a bulk request reports every bad entry at once, not pydantic's first). The models below
document the shapes in OpenAPI. The document says "no authentication"; DESIGN.md's contract is a
token or API key unless the operator sets `VOXSWITCH_VOICE_API_AUTH=false`.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from voxswitch.api.deps import optional_principal
from voxswitch.api.errors import error_response
from voxswitch.api.state import AppState
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.services.identity import Principal

router = APIRouter(tags=[TAGS[Surface.VOICE]])


class VoiceCallBody(BaseModel):
    ToNumber: str = Field(
        description="E.164 number (+15551234567) or a dialable extension; a device's extension rings it"
    )
    FromNumber: str = Field(description="Caller id: E.164 or digits")
    Text: str = Field(description="What is spoken when the callee answers")
    Voice: str | None = Field(None, description="TTS voice (engine-specific name)")
    Language: str | None = Field(None, description="TTS language, e.g. en-US")
    Repeat: int | None = Field(None, ge=1, le=10, description="How many times the text is spoken, a second apart")
    StatusCallback: str | None = Field(None, description="URL POSTed the status body on every state, HMAC-signed")
    Record: bool | None = Field(None, description="Record what the callee says (mono WAV)")


class BulkBody(BaseModel):
    calls: list[VoiceCallBody]


class CallAccepted(BaseModel):
    success: bool
    call_id: str
    task_id: str
    status: str
    to_number: str
    from_number: str
    timestamp: str
    estimated_processing_time: str


class BulkAccepted(BaseModel):
    success: bool
    queued_calls: int
    call_ids: list[str]
    task_ids: list[str]
    batch_id: str
    timestamp: str


class CallStatus(BaseModel):
    id: str
    task_id: str
    to_number: str
    from_number: str
    text: str
    status: str
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    duration: float | None
    task_status: str
    error_message: str | None
    attempts: int
    sip_status: int | None


class MetricsCalls(BaseModel):
    total: int
    pending: int
    processing: int
    completed: int
    failed: int
    success_rate: float
    by_status: dict[str, int]
    queue_depth: int
    oldest_unfinished_at: str | None


class Metrics(BaseModel):
    timestamp: str
    calls: MetricsCalls
    system: dict[str, Any]


class VoiceError(BaseModel):
    """The document's error bodies: `{error, missing, required}` for missing fields, else
    `{error, details}` (plus the fields at fault, named)."""

    error: str
    missing: list[str] | None = None
    required: list[str] | None = None
    details: str | None = None
    field: str | None = None
    errors: list[dict[str, str]] | None = None


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    if model is BulkBody:
        schema["properties"]["calls"]["items"] = VoiceCallBody.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": VoiceError, "description": "missing fields, or fields that are not valid"},
    401: {"model": VoiceError, "description": "no valid token or API key"},
    403: {"model": VoiceError, "description": "the user may not place calls"},
}


class _PrincipalCache:
    """Who a credential proved to be, for a few seconds. Checking an API key costs a store read
    (measured: ~1.7 ms of CPU, more than the enqueue); a machine client sends the same key on every
    call. A revoked key or session therefore still works on this surface for up to `ttl` seconds."""

    def __init__(self, ttl: float = 5.0, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, credential: str) -> Principal | None:
        hit = self._entries.get(credential)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, credential: str, principal: Principal) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[credential] = (time.monotonic() + self.ttl, principal)


async def voice_principal(request: Request) -> Principal | None:
    """A token or API key of a user allowed to place calls, unless the operator opened the API."""
    state = _state(request)
    principal = None
    authorization = request.headers.get("authorization")
    if authorization or request.cookies.get(state.settings.session_cookie_name):
        cache: _PrincipalCache | None = getattr(request.app.state, "voice_principals", None)
        if cache is None:
            cache = request.app.state.voice_principals = _PrincipalCache()
        key = hashlib.sha256(authorization.encode()).hexdigest() if authorization else None
        principal = cache.get(key) if key else None
        if principal is None:
            principal = await optional_principal(request, state, _bearer(request), None)
            if key and principal is not None:
                cache.put(key, principal)
    if not state.settings.voice_api_auth:
        return principal
    if principal is None:
        raise VoxError(ErrorKind.TOKEN_INVALID, "Authentication required", details="Missing bearer token or API key")
    if not (principal.user.can_call or principal.is_admin):
        raise VoxError(ErrorKind.AUTHORIZATION, "Permission denied", details="this user may not place calls")
    return principal


def _bearer(request: Request) -> Any:
    from fastapi.security import HTTPAuthorizationCredentials

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token.strip())


Caller = Annotated[Principal | None, Depends(voice_principal)]


def _state(request: Request) -> AppState:
    # not the shared `State` dependency: a plain function dependency runs on the thread pool, a
    # hop per request that the enqueue path (hundreds per second) cannot afford
    state: AppState = request.app.state.vox
    return state


def _ts(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        raise VoxError(
            ErrorKind.BAD_REQUEST, "Request body is not valid JSON", [FieldProblem("body", "invalid JSON")]
        ) from None


async def accept_call(request: Request) -> JSONResponse:
    """`POST /voice/call` itself: the route below and `VoiceCallFastPath` both answer with this."""
    caller = await voice_principal(request)
    accepted = await _state(request).voice.place(await _json(request), user_id=caller.user.id if caller else None)
    return JSONResponse(
        {
            "success": True,
            "call_id": accepted.call_id,
            "task_id": accepted.task_id,
            "status": "queued",
            "to_number": accepted.to_number,
            "from_number": accepted.from_number,
            "timestamp": _ts(accepted.created_at),
            "estimated_processing_time": accepted.estimated_processing_time,
        },
        status_code=202,
    )


@router.post(
    "/voice/call",
    status_code=202,
    summary="Make a voice call",
    response_model=CallAccepted,
    responses=_ERRORS,
    openapi_extra=_request_body(VoiceCallBody),
)
async def make_call(request: Request) -> JSONResponse:
    """Queue a text-to-speech call; the 202 comes once the job is committed."""
    return await accept_call(request)


class VoiceCallFastPath:
    """`POST /voice/call` straight to `accept_call`, past FastAPI's routing and dependency
    machinery: on this path that machinery cost more CPU than the durable enqueue itself
    (~1.3 ms a request measured, on a 2-core machine where 500 requests a second is the target).
    Request ids, rate limits and metrics still apply (RequestMiddleware sits outside); errors are
    rendered by the same handler as everywhere else."""

    def __init__(self, app: ASGIApp, fastapi: Any) -> None:
        self.app = app
        self.fastapi = fastapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/voice/call" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "app": self.fastapi}
        request = Request(scope, receive)
        try:
            response = await accept_call(request)
        except VoxError as exc:
            response = error_response(scope["path"], exc)
        await response(scope, receive, send)


@router.post(
    "/voice/bulk",
    status_code=202,
    summary="Make many voice calls at once",
    response_model=BulkAccepted,
    responses=_ERRORS,
    openapi_extra=_request_body(BulkBody),
)
async def make_calls(request: Request, caller: Caller) -> JSONResponse:
    """Queue every call of the list in one transaction, or none of them."""
    accepted = await _state(request).voice.place_bulk(await _json(request), user_id=caller.user.id if caller else None)
    return JSONResponse(
        {
            "success": True,
            "queued_calls": len(accepted.call_ids),
            "call_ids": accepted.call_ids,
            "task_ids": accepted.task_ids,
            "batch_id": accepted.batch_id,
            "timestamp": _ts(accepted.created_at),
        },
        status_code=202,
    )


@router.get(
    "/voice/status/{call_id}",
    summary="Get call status",
    response_model=CallStatus,
    responses={**_ERRORS, 404: {"model": VoiceError, "description": "no such call"}},
)
async def call_status(call_id: str, request: Request, caller: Caller) -> JSONResponse:
    """Where the call is: queued, dialing, ringing, in_progress, completed, failed, busy, no_answer."""
    view = await _state(request).voice.status(
        call_id,
        user_id=caller.user.id if caller else None,
        admin=caller is None or caller.is_admin,
    )
    return JSONResponse(view)


@router.get("/api/metrics", summary="System metrics", response_model=Metrics, responses=_ERRORS)
async def metrics(request: Request, caller: Caller) -> JSONResponse:
    """Calls by state and success rate from the store; the workers and the queue."""
    state = _state(request)
    calls = await state.voice.metrics()
    worker = state.voice_worker.describe()
    db_ok = await state.status.database_ok()
    wanted = state.settings.voice_workers
    healthy = db_ok and (worker["running"] or not wanted)
    return JSONResponse(
        {
            "timestamp": _ts(),
            "calls": calls,
            "system": {
                "status": "operational" if healthy else "degraded",
                "version": state.version,
                # the document's key, kept for clients that read it: our in-process workers
                "celery_workers": "Active" if worker["running"] else "Inactive",
                "workers": worker,
                "webhooks": {"sent": state.webhooks.sent, "failed": state.webhooks.failed},
            },
        }
    )
