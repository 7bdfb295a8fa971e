"""callbot-api.md logs: `/api/logs/latest` and the `/api/logs/stream` WebSocket; `/metrics` too.

Logs name callers and numbers, so both log endpoints need an admin (a Bearer token, or for the
WebSocket, where browsers cannot set headers, `?token=`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from voxswitch.api.deps import AdminUser, State
from voxswitch.api.state import AppState
from voxswitch.api.surfaces import HEALTH_TAG, TAGS, Surface
from voxswitch.errors import VoxError

router = APIRouter(tags=[TAGS[Surface.CALLBOT]])


class Level(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LatestLogs(BaseModel):
    logs: list[dict[str, Any]]
    total_lines: int
    filtered_lines: int


@router.get("/api/logs/latest", response_model=LatestLogs)
async def latest(
    _: AdminUser,
    state: State,
    lines: Annotated[int, Query(ge=1, le=1000, description="How many entries, newest last")] = 100,
    level: Annotated[Level | None, Query(description="Minimum level")] = None,
    since: Annotated[datetime | None, Query(description="Only entries at or after this ISO 8601 time")] = None,
) -> LatestLogs:
    if since is not None and since.tzinfo is None:
        raise VoxError.invalid("since", "must include a time zone, e.g. 2024-01-01T10:00:00Z", since.isoformat())
    picked = state.logs.latest(lines, level.value if level else None, since)
    return LatestLogs(logs=picked, total_lines=len(state.logs.entries), filtered_lines=len(picked))


@router.websocket("/api/logs/stream")
async def stream(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.vox
    auth = websocket.headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else websocket.query_params.get("token", "")
    try:
        principal = await state.identity.authenticate_token(token) if token else None
    except VoxError:
        principal = None
    if principal is None or not principal.is_admin:
        await websocket.close(code=1008, reason="admin token required")
        return
    await websocket.accept()
    queue = state.logs.subscribe()

    async def forward() -> None:
        while True:
            await websocket.send_json(await queue.get())

    sender = asyncio.create_task(forward())
    try:
        while True:  # the client sends nothing; receiving is how we learn it has gone
            if (await websocket.receive())["type"] == "websocket.disconnect":
                break
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        state.logs.unsubscribe(queue)


@router.get("/metrics", tags=[HEALTH_TAG], response_class=Response)
async def metrics(state: State) -> Response:
    """Prometheus exposition format."""
    state.metrics.uptime.set(state.uptime_seconds)
    state.metrics.active_calls.set(await state.status.active_calls())
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
