"""pbx-api.md DIDs: phone numbers (CRUD) and `POST /api/dids/sync` from the configured Twilio account."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import AdminUser, CurrentUser, State
from voxswitch.api.pagination import Page, Paging
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.services.validation import MAX_ID

router = APIRouter(prefix="/api", tags=[TAGS[Surface.PBX]])

DidId = Annotated[int, Path(ge=1, le=MAX_ID, description="DID id")]


class DidOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    phone_number: str = Field(description="E.164")
    friendly_name: str
    capabilities: list[str] = Field(description="voice, sms, mms, fax")
    source: str = Field(description="manual or twilio")
    provider_sid: str | None = Field(description="Twilio's IncomingPhoneNumber sid (PN...)")
    created_at: datetime
    updated_at: datetime


class DidCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number: str = Field(max_length=32, description="E.164, e.g. +15551234567")
    friendly_name: str = Field(default="", max_length=200)
    capabilities: list[str] = Field(default_factory=lambda: ["voice"], max_length=4)


class DidUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number: str | None = Field(default=None, max_length=32)
    friendly_name: str | None = Field(default=None, max_length=200)
    capabilities: list[str] | None = Field(default=None, max_length=4)


class SyncOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    skipped: list[str] = Field(description="numbers Twilio listed that could not be taken (invalid or held)")
    not_in_account: list[str] = Field(description="DIDs synced before that the account no longer lists (kept)")
    data: list[DidOut] = Field(description="the account's numbers as DIDs, after the sync")


@router.get("/dids", response_model=Page[DidOut])
async def list_dids(_: CurrentUser, state: State, paging: Paging) -> Page[DidOut]:
    dids, total = await state.dids.list_dids(limit=paging.limit, offset=paging.offset)
    return Page.of([DidOut.model_validate(d) for d in dids], total, paging)


@router.post("/dids", status_code=201, response_model=DidOut)
async def create_did(body: DidCreate, _: AdminUser, state: State) -> DidOut:
    return DidOut.model_validate(await state.dids.create(**body.model_dump()))


@router.post("/dids/sync", response_model=SyncOut)
async def sync_dids(_: AdminUser, state: State) -> SyncOut:
    """Pull the Twilio account's numbers (credentials from the system config or TWILIO_* variables)."""
    account = await state.system_config.twilio()
    if account is None:
        raise VoxError(
            ErrorKind.UNAVAILABLE,
            "Twilio is not configured: set twilio_account_sid and twilio_auth_token with PUT /api/system/config "
            "or the TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN variables",
            [
                FieldProblem("twilio_account_sid", "not configured"),
                FieldProblem("twilio_auth_token", "not configured"),
            ],
        )
    result = await state.dids.sync(account)
    return SyncOut(
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        skipped=result.skipped,
        not_in_account=result.not_in_account,
        data=[DidOut.model_validate(d) for d in result.dids],
    )


@router.get("/dids/{did_id}", response_model=DidOut)
async def get_did(did_id: DidId, _: CurrentUser, state: State) -> DidOut:
    return DidOut.model_validate(await state.dids.get(did_id))


@router.put("/dids/{did_id}", response_model=DidOut)
async def update_did(did_id: DidId, body: DidUpdate, _: AdminUser, state: State) -> DidOut:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return DidOut.model_validate(await state.dids.update(did_id, changes))


@router.delete("/dids/{did_id}", status_code=204, response_class=Response)
async def delete_did(did_id: DidId, _: AdminUser, state: State) -> Response:
    """Deletes the DID and its routes."""
    await state.dids.delete(did_id)
    return Response(status_code=204)
