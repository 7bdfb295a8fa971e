"""softphone-api.md identity: OAuth2 code exchange, refresh, profile, and the admin user endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import AdminUser, CurrentUser, State
from voxswitch.api.pagination import MAX_OFFSET
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.errors import VoxError
from voxswitch.store.models import User

router = APIRouter(prefix="/api/v1", tags=[TAGS[Surface.SOFTPHONE]])


class AuthIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str = Field(min_length=1, max_length=2048)
    redirect_uri: str = Field(min_length=1, max_length=2048)


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    refresh_token: str = Field(min_length=1, max_length=512)


class Permissions(BaseModel):
    can_call: bool
    is_admin: bool


class Profile(BaseModel):
    user_id: str
    nextcloud_user_id: str | None
    display_name: str
    email: str
    permissions: Permissions
    privacy_consent: bool
    created_at: datetime


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    privacy_consent: bool | None = None


class AdminUserRow(BaseModel):
    user_id: str
    display_name: str
    email: str
    total_calls: int
    last_call: datetime | None
    permissions: Permissions


class AdminUsers(BaseModel):
    users: list[AdminUserRow]
    total_count: int


class PermissionsIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    can_call: bool | None = None
    is_admin: bool | None = None
    call_limit_per_day: int | None = Field(default=None, ge=0, le=100_000)


class PermissionsOut(BaseModel):
    user_id: str
    permissions: Permissions
    call_limit_per_day: int
    updated_at: datetime


def _permissions(u: User) -> Permissions:
    return Permissions(can_call=u.can_call, is_admin=u.is_admin)


def _profile(u: User) -> Profile:
    return Profile(
        user_id=u.id,
        nextcloud_user_id=u.external_subject,
        display_name=u.display_name,
        email=u.email,
        permissions=_permissions(u),
        privacy_consent=u.privacy_consent,
        created_at=u.created_at,
    )


@router.post("/auth", response_model=TokenOut)
async def auth(body: AuthIn, state: State) -> TokenOut:
    """Exchange the identity provider's authorization code for our tokens (RFC 6749 §4.1)."""
    who = await state.oauth.exchange(body.code, body.redirect_uri)
    user = await state.identity.user_for_external(who.subject, who.email, who.display_name)
    result = await state.identity.start_session(user, method="oauth")
    return TokenOut(access_token=result.access_token, refresh_token=result.refresh_token, expires_in=result.expires_in)


@router.post("/auth/refresh", response_model=TokenOut)
async def refresh(body: RefreshIn, state: State) -> TokenOut:
    """Rotates: the refresh token sent is spent, and a new one comes back with the access token."""
    result = await state.identity.refresh(body.refresh_token)
    return TokenOut(access_token=result.access_token, refresh_token=result.refresh_token, expires_in=result.expires_in)


@router.get("/user/profile", response_model=Profile)
async def get_profile(principal: CurrentUser) -> Profile:
    return _profile(principal.user)


@router.put("/user/profile", response_model=Profile)
async def put_profile(body: ProfileUpdate, principal: CurrentUser, state: State) -> Profile:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "display_name" in changes:
        changes["display_name"] = changes["display_name"].strip()
        if not changes["display_name"]:
            raise VoxError.invalid("display_name", "must not be blank", body.display_name)
    user = await state.identity.update_user(principal.user.id, changes) if changes else principal.user
    return _profile(user)


@router.get("/admin/users", response_model=AdminUsers)
async def admin_users(
    _: AdminUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> AdminUsers:
    users, total = await state.identity.list_users(limit=limit, offset=offset, search=search)
    totals = await state.identity.call_totals([u.id for u in users])
    rows = [
        AdminUserRow(
            user_id=u.id,
            display_name=u.display_name,
            email=u.email,
            total_calls=totals.get(u.id, (0, None))[0],
            last_call=totals.get(u.id, (0, None))[1],
            permissions=_permissions(u),
        )
        for u in users
    ]
    return AdminUsers(users=rows, total_count=total)


@router.put("/admin/users/{user_id}/permissions", response_model=PermissionsOut)
async def set_permissions(
    user_id: Annotated[str, Path(max_length=36)], body: PermissionsIn, _: AdminUser, state: State
) -> PermissionsOut:
    changes: dict[str, object] = {}
    if body.can_call is not None:
        changes["can_call"] = body.can_call
    if body.is_admin is not None:
        changes["role"] = "admin" if body.is_admin else "user"
    if body.call_limit_per_day is not None:
        changes["call_limit_per_day"] = body.call_limit_per_day
    user = await state.identity.update_user(user_id, changes)
    return PermissionsOut(
        user_id=user.id,
        permissions=_permissions(user),
        call_limit_per_day=user.call_limit_per_day,
        updated_at=user.updated_at,
    )
