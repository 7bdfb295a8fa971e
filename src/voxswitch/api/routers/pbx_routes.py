"""pbx-api.md routes: per DID, by priority, with conditions and one action (services/routes.py says
what each action's `action_data` holds). `PUT /api/routes/reorder` takes every route of one DID."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import AdminUser, CurrentUser, State
from voxswitch.api.pagination import Page, Paging
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.services.validation import MAX_ID

router = APIRouter(prefix="/api", tags=[TAGS[Surface.PBX]])

RouteId = Annotated[int, Path(ge=1, le=MAX_ID, description="Route id")]


class RouteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    did_id: int
    priority: int = Field(description="lower runs first; ties by id")
    conditions: dict[str, Any] = Field(description="time_start, time_end (HH:MM), days (mon..sun), caller_patterns")
    action: str = Field(description="forward, ring_group, external, app, voicemail, hangup")
    action_data: dict[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RouteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    did_id: int = Field(ge=1, le=MAX_ID)
    priority: int | None = Field(default=None, description="default: after the DID's last route")
    conditions: dict[str, Any] = Field(default_factory=dict)
    action: str = Field(max_length=20)
    action_data: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class RouteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    did_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    priority: int | None = None
    conditions: dict[str, Any] | None = None
    action: str | None = Field(default=None, max_length=20)
    action_data: dict[str, Any] | None = None
    enabled: bool | None = None


class ReorderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order: list[int] = Field(max_length=1000, description="every route id of one DID, first to run first")


class RouteList(BaseModel):
    data: list[RouteOut]


@router.get("/routes", response_model=Page[RouteOut])
async def list_routes(
    _: CurrentUser,
    state: State,
    paging: Paging,
    did_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this DID's routes")] = None,
) -> Page[RouteOut]:
    """By DID, then priority."""
    routes, total = await state.routes.list_routes(did_id=did_id, limit=paging.limit, offset=paging.offset)
    return Page.of([RouteOut.model_validate(r) for r in routes], total, paging)


@router.post("/routes", status_code=201, response_model=RouteOut)
async def create_route(body: RouteCreate, _: AdminUser, state: State) -> RouteOut:
    fields = body.model_dump(exclude_none=True)
    return RouteOut.model_validate(await state.routes.create(fields))


@router.put("/routes/reorder", response_model=RouteList)
async def reorder_routes(body: ReorderIn, _: AdminUser, state: State) -> RouteList:
    """Priorities become 1..n in the given order; the list holds every route of one DID, once."""
    routes = await state.routes.reorder(body.order)
    return RouteList(data=[RouteOut.model_validate(r) for r in routes])


@router.get("/routes/{route_id}", response_model=RouteOut)
async def get_route(route_id: RouteId, _: CurrentUser, state: State) -> RouteOut:
    return RouteOut.model_validate(await state.routes.get(route_id))


@router.put("/routes/{route_id}", response_model=RouteOut)
async def update_route(route_id: RouteId, body: RouteUpdate, _: AdminUser, state: State) -> RouteOut:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return RouteOut.model_validate(await state.routes.update(route_id, changes))


@router.delete("/routes/{route_id}", status_code=204, response_class=Response)
async def delete_route(route_id: RouteId, _: AdminUser, state: State) -> Response:
    await state.routes.delete(route_id)
    return Response(status_code=204)
