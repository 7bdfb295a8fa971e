"""pbx-api.md identity: login with a session cookie, current user, users (admin), first-run setup."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import AdminUser, CurrentUser, OptionalUser, State
from voxswitch.api.pagination import Page, Paging
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.errors import ErrorKind, VoxError
from voxswitch.store.models import User

router = APIRouter(prefix="/api", tags=[TAGS[Surface.PBX]])

UserId = Annotated[str, Path(max_length=36, description="User id (UUID)")]
_TWILIO_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")


class PbxUser(BaseModel):
    id: str
    email: str
    display_name: str
    role: str
    can_call: bool
    call_limit_per_day: int
    is_active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, u: User) -> PbxUser:
        return cls(
            id=u.id,
            email=u.email,
            display_name=u.display_name,
            role=u.role,
            can_call=u.can_call,
            call_limit_per_day=u.call_limit_per_day,
            is_active=u.is_active,
            created_at=u.created_at,
            updated_at=u.updated_at,
        )


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)


class LoginOut(BaseModel):
    user: PbxUser
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class Message(BaseModel):
    message: str


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)
    role: str = Field(default="user", max_length=20)
    display_name: str = Field(default="", max_length=200)
    can_call: bool | None = None
    call_limit_per_day: int | None = Field(default=None, ge=0, le=100_000)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=256)
    role: str | None = Field(default=None, max_length=20)
    display_name: str | None = Field(default=None, max_length=200)
    can_call: bool | None = None
    call_limit_per_day: int | None = Field(default=None, ge=0, le=100_000)
    is_active: bool | None = None


class SetupStatus(BaseModel):
    setup_required: bool


class SetupIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    admin_email: str = Field(max_length=320)
    admin_password: str = Field(max_length=256)
    twilio_account_sid: str | None = Field(default=None, max_length=64)
    twilio_auth_token: str | None = Field(default=None, max_length=128)


class SetupOut(BaseModel):
    message: str
    user: PbxUser


# --- session -------------------------------------------------------------------------------------


@router.post("/auth/login", response_model=LoginOut)
async def login(body: LoginIn, state: State, response: Response) -> LoginOut:
    """Sets the session cookie and returns the user, plus a Bearer token usable on every surface."""
    result = await state.identity.login(body.email, body.password, cookie=True)
    assert result.cookie is not None
    s = state.settings
    response.set_cookie(
        s.session_cookie_name,
        result.cookie,
        max_age=s.refresh_token_ttl_seconds,
        httponly=True,
        secure=s.session_cookie_secure,
        samesite="lax",
        path="/",
    )
    return LoginOut(
        user=PbxUser.of(result.user),
        access_token=result.access_token,
        refresh_token=result.refresh_token,
        expires_in=result.expires_in,
    )


@router.post("/auth/logout", response_model=Message)
async def logout(principal: OptionalUser, state: State, response: Response) -> Message:
    """Ends the session behind the cookie or token (every token of that login dies with it)."""
    if principal is not None and principal.session_id:
        await state.identity.logout(principal.session_id)
    response.delete_cookie(state.settings.session_cookie_name, path="/")
    return Message(message="Logged out")


@router.get("/me", response_model=PbxUser)
async def me(principal: CurrentUser) -> PbxUser:
    return PbxUser.of(principal.user)


@router.put("/me/password", response_model=Message)
async def change_password(body: PasswordIn, principal: CurrentUser, state: State) -> Message:
    await state.identity.change_password(principal, body.current_password, body.new_password)
    return Message(message="Password updated")


# --- users (admin) -------------------------------------------------------------------------------


@router.get("/users", response_model=Page[PbxUser])
async def list_users(_: AdminUser, state: State, paging: Paging) -> Page[PbxUser]:
    users, total = await state.identity.list_users(limit=paging.limit, offset=paging.offset)
    return Page.of([PbxUser.of(u) for u in users], total, paging)


@router.post("/users", status_code=201, response_model=PbxUser)
async def create_user(body: UserCreate, _: AdminUser, state: State) -> PbxUser:
    user = await state.identity.create_user(
        body.email,
        body.password,
        role=body.role,
        display_name=body.display_name,
        can_call=body.can_call,
        call_limit_per_day=body.call_limit_per_day,
    )
    return PbxUser.of(user)


@router.get("/users/{user_id}", response_model=PbxUser)
async def get_user(user_id: UserId, _: AdminUser, state: State) -> PbxUser:
    return PbxUser.of(await state.identity.get_user(user_id))


@router.put("/users/{user_id}", response_model=PbxUser)
async def update_user(user_id: UserId, body: UserUpdate, _: AdminUser, state: State) -> PbxUser:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return PbxUser.of(await state.identity.update_user(user_id, changes))


@router.delete("/users/{user_id}", status_code=204, response_class=Response)
async def delete_user(user_id: UserId, admin: AdminUser, state: State) -> Response:
    if user_id == admin.user.id:
        raise VoxError(ErrorKind.CONFLICT, "You cannot delete your own account here")
    await state.identity.delete_user(user_id)
    return Response(status_code=204)


# --- first-run setup -----------------------------------------------------------------------------


@router.get("/setup/status", response_model=SetupStatus)
async def setup_status(state: State) -> SetupStatus:
    """Only answers before setup is complete, as the document says; afterwards 403."""
    if await state.identity.setup_completed():
        raise VoxError(ErrorKind.AUTHORIZATION, "Setup has already been completed")
    return SetupStatus(setup_required=True)


@router.post("/setup/complete", status_code=201, response_model=SetupOut)
async def setup_complete(body: SetupIn, state: State) -> SetupOut:
    settings: dict[str, tuple[str, bool]] = {}
    if body.twilio_account_sid is not None:
        if not _TWILIO_SID.match(body.twilio_account_sid):
            raise VoxError.invalid("twilio_account_sid", "must be 'AC' followed by 32 hex digits")
        settings["twilio.account_sid"] = (body.twilio_account_sid, False)
    if body.twilio_auth_token is not None:
        settings["twilio.auth_token"] = (body.twilio_auth_token, True)
    user = await state.identity.complete_setup(body.admin_email, body.admin_password, settings)
    return SetupOut(message="Setup complete", user=PbxUser.of(user))
