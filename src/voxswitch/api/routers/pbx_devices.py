"""pbx-api.md devices: SIP accounts (CRUD), live registrations, a device's registration and auth events.

Reads need any signed-in user; changes need an admin. A password goes in, never out: the store keeps
only its digest HA1s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import AdminUser, CurrentUser, State
from voxswitch.api.pagination import Page, Paging
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.services.devices import DeviceService
from voxswitch.services.validation import MAX_ID
from voxswitch.store.models import Device

router = APIRouter(prefix="/api", tags=[TAGS[Surface.PBX]])

DeviceId = Annotated[int, Path(ge=1, le=MAX_ID, description="Device id")]


class DeviceOut(BaseModel):
    id: int
    name: str
    username: str
    type: str
    user_id: str | None
    enabled: bool
    dnd: bool
    registered: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: Device, devices: DeviceService) -> DeviceOut:
        return cls(
            id=d.id,
            name=d.name,
            username=d.username,
            type=d.type,
            user_id=d.user_id,
            enabled=d.enabled,
            dnd=d.dnd,
            registered=devices.registered(d.username),
            created_at=d.created_at,
            updated_at=d.updated_at,
        )


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    username: str = Field(max_length=64, description="SIP username (an extension such as 1001)")
    password: str = Field(max_length=128, description="SIP password; only its digest hashes are kept")
    type: str = Field(default="generic", max_length=50, description="Vendor or kind: grandstream, softphone, ...")
    user_id: str | None = Field(default=None, max_length=36, description="The user whose device it is")
    enabled: bool = True


class DeviceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=64, description="Needs `password` too")
    password: str | None = Field(default=None, max_length=128)
    type: str | None = Field(default=None, max_length=50)
    user_id: str | None = Field(default=None, max_length=36, description="null detaches the device from its user")
    enabled: bool | None = None


class RegistrationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    device_id: int | None
    username: str
    contact: str
    source_host: str
    source_port: int
    transport: str
    user_agent: str
    expires_at: datetime
    expires_in: int
    q: float | None
    instance_id: str | None


class DeviceEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: int | None
    username: str | None
    kind: str = Field(description="registered, unregistered, banned, credentials_changed")
    source: str
    detail: str
    created_at: datetime


@router.get("/devices", response_model=Page[DeviceOut])
async def list_devices(_: CurrentUser, state: State, paging: Paging) -> Page[DeviceOut]:
    devices, total = await state.devices.list_devices(limit=paging.limit, offset=paging.offset)
    return Page.of([DeviceOut.of(d, state.devices) for d in devices], total, paging)


@router.post("/devices", status_code=201, response_model=DeviceOut)
async def create_device(body: DeviceCreate, _: AdminUser, state: State) -> DeviceOut:
    device = await state.devices.create(**body.model_dump())
    return DeviceOut.of(device, state.devices)


@router.get("/devices/registrations", response_model=Page[RegistrationOut])
async def list_registrations(_: CurrentUser, state: State, paging: Paging) -> Page[RegistrationOut]:
    """Live registrar bindings (contact, source address, transport, user agent, expiry)."""
    every = state.devices.registrations()
    page = every[paging.offset : paging.offset + paging.limit]
    return Page.of([RegistrationOut.model_validate(r) for r in page], len(every), paging)


@router.get("/devices/{device_id}", response_model=DeviceOut)
async def get_device(device_id: DeviceId, _: CurrentUser, state: State) -> DeviceOut:
    return DeviceOut.of(await state.devices.get(device_id), state.devices)


@router.put("/devices/{device_id}", response_model=DeviceOut)
async def update_device(device_id: DeviceId, body: DeviceUpdate, _: AdminUser, state: State) -> DeviceOut:
    changes = body.model_dump(exclude_unset=True)
    changes = {k: v for k, v in changes.items() if v is not None or k == "user_id"}
    return DeviceOut.of(await state.devices.update(device_id, changes), state.devices)


@router.delete("/devices/{device_id}", status_code=204, response_class=Response)
async def delete_device(device_id: DeviceId, _: AdminUser, state: State) -> Response:
    await state.devices.delete(device_id)
    return Response(status_code=204)


@router.get("/devices/{device_id}/events", response_model=Page[DeviceEventOut])
async def device_events(device_id: DeviceId, _: CurrentUser, state: State, paging: Paging) -> Page[DeviceEventOut]:
    """Registration, credential and authentication events of the device, bans included; newest first."""
    events, total = await state.devices.events(device_id, limit=paging.limit, offset=paging.offset)
    return Page.of([DeviceEventOut.model_validate(e) for e in events], total, paging)
