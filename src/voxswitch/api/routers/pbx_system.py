"""pbx-api.md system: config (Twilio credentials, voicemail address; admin), live status (admin),
and do-not-disturb for the signed-in user's own devices."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import AdminUser, CurrentUser, State
from voxswitch.api.surfaces import TAGS, Surface

router = APIRouter(prefix="/api", tags=[TAGS[Surface.PBX]])


class ConfigOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    twilio_account_sid: str | None
    twilio_auth_token: str | None = Field(description="masked (********) when set; never shown")
    twilio_configured: bool
    twilio_source: str | None = Field(description="config, environment, or config+environment")
    voicemail_email: str | None
    timezone: str = Field(description="the PBX's local time zone (VOXSWITCH_TIMEZONE; read-only here)")


class ConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    twilio_account_sid: str | None = Field(default=None, max_length=64, description="AC + 32 hex digits")
    twilio_auth_token: str | None = Field(default=None, max_length=128)
    voicemail_email: str | None = Field(default=None, max_length=320)


class ListenerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    transport: str
    host: str
    port: int


class TrunkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    host: str
    port: int
    transport: str
    registers: bool = Field(description="whether we keep a registration with the trunk")
    state: str = Field(description="unregistered, registering, registered, failed")
    last_error: str | None
    registered_until: datetime | None


class TwilioOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    configured: bool
    source: str | None
    status: str = Field(description="ok, unauthorized, error, unreachable, not_configured")
    reachable: bool | None
    http_status: int | None
    latency_ms: float | None
    error: str | None
    checked_at: datetime | None


class StatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    sip_enabled: bool
    realm: str
    listeners: list[ListenerOut]
    devices: int
    registered_devices: int
    bindings: int
    trunk: TrunkOut | None
    active_calls: int
    twilio: TwilioOut


class DndIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class DndDevice(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    username: str
    dnd: bool


class DndOut(BaseModel):
    enabled: bool
    devices: list[DndDevice] = Field(description="the signed-in user's devices, now all in this state")


@router.get("/system/config", response_model=ConfigOut)
async def get_config(_: AdminUser, state: State) -> ConfigOut:
    return ConfigOut.model_validate(await state.system_config.get())


@router.put("/system/config", response_model=ConfigOut)
async def update_config(body: ConfigIn, _: AdminUser, state: State) -> ConfigOut:
    """The fields given are set; null or "" clears one. The auth token is stored as a secret."""
    return ConfigOut.model_validate(await state.system_config.update(body.model_dump(exclude_unset=True)))


@router.get("/system/status", response_model=StatusOut)
async def system_status(_: AdminUser, state: State) -> StatusOut:
    """SIP listeners, registrations, the trunk's registration, active calls, Twilio reachability."""
    return StatusOut.model_validate(await state.system_status.snapshot())


@router.put("/dnd", response_model=DndOut)
async def set_dnd(body: DndIn, principal: CurrentUser, state: State) -> DndOut:
    """Do not disturb on (or off) for every device of the signed-in user: calls to them get busy."""
    devices = await state.devices.set_dnd(principal.user.id, body.enabled)
    return DndOut(enabled=body.enabled, devices=[DndDevice.model_validate(d) for d in devices])
