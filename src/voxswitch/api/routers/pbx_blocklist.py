"""pbx-api.md blocklist: numbers and prefixes (`+1900*`) refused before anything rings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import AdminUser, CurrentUser, State
from voxswitch.api.pagination import Page, Paging
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.services.validation import MAX_ID

router = APIRouter(prefix="/api", tags=[TAGS[Surface.PBX]])

EntryId = Annotated[int, Path(ge=1, le=MAX_ID, description="Blocklist entry id")]


class BlockedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    phone_number: str = Field(description="an E.164 number, or a prefix ending in *")
    reason: str
    created_by: str | None
    created_at: datetime


class BlockedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number: str = Field(max_length=32, description="+15551234567, or a prefix such as +1900*")
    reason: str = Field(default="", max_length=200)


@router.get("/blocklist", response_model=Page[BlockedOut])
async def list_blocklist(_: CurrentUser, state: State, paging: Paging) -> Page[BlockedOut]:
    entries, total = await state.blocklist.list_entries(limit=paging.limit, offset=paging.offset)
    return Page.of([BlockedOut.model_validate(e) for e in entries], total, paging)


@router.post("/blocklist", status_code=201, response_model=BlockedOut)
async def add_to_blocklist(body: BlockedIn, admin: AdminUser, state: State) -> BlockedOut:
    entry = await state.blocklist.add(body.phone_number, body.reason, created_by=admin.user.id)
    return BlockedOut.model_validate(entry)


@router.delete("/blocklist/{entry_id}", status_code=204, response_class=Response)
async def remove_from_blocklist(entry_id: EntryId, _: AdminUser, state: State) -> Response:
    await state.blocklist.remove(entry_id)
    return Response(status_code=204)
