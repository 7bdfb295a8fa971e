"""agents-api.md authentication: `/auth/register`, `/auth/login`, `/auth/me`, `/auth/refresh-token`."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import CurrentUser, State
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.errors import ErrorKind, VoxError
from voxswitch.store.models import User

router = APIRouter(prefix="/auth", tags=[TAGS[Surface.AGENTS]])


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)


class RegisterOut(BaseModel):
    id: str
    email: str
    first_name: str
    last_name: str
    created_at: datetime


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)


class LoginUser(BaseModel):
    id: str
    email: str
    role: str


class LoginOut(BaseModel):
    token: str
    refresh_token: str
    expires_in: int
    user: LoginUser


class MeOut(BaseModel):
    id: str
    email: str
    first_name: str
    last_name: str
    role: str
    created_at: datetime


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    refresh_token: str | None = Field(default=None, max_length=512)


class RefreshOut(BaseModel):
    token: str
    expires_in: int
    refresh_token: str


def _me(user: User) -> MeOut:
    return MeOut(
        id=user.id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        role=user.role,
        created_at=user.created_at,
    )


@router.post("/register", status_code=201, response_model=RegisterOut)
async def register(body: RegisterIn, state: State) -> RegisterOut:
    if not state.settings.allow_registration:
        raise VoxError(ErrorKind.AUTHORIZATION, "Registration is disabled", details="Ask an administrator")
    user = await state.identity.create_user(
        body.email, body.password, first_name=body.first_name.strip(), last_name=body.last_name.strip()
    )
    return RegisterOut(
        id=user.id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        created_at=user.created_at,
    )


@router.post("/login", response_model=LoginOut)
async def login(body: LoginIn, state: State) -> LoginOut:
    result = await state.identity.login(body.email, body.password)
    return LoginOut(
        token=result.access_token,
        refresh_token=result.refresh_token,
        expires_in=result.expires_in,
        user=LoginUser(id=result.user.id, email=result.user.email, role=result.user.role),
    )


@router.get("/me", response_model=MeOut)
async def me(principal: CurrentUser) -> MeOut:
    return _me(principal.user)


@router.post("/refresh-token", response_model=RefreshOut)
async def refresh_token(request: Request, state: State, body: RefreshIn | None = Body(default=None)) -> RefreshOut:
    """Spend a refresh token (sent as `Authorization: Bearer <refresh_token>`, or in the body)."""
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else (body.refresh_token if body else None)
    if not token:
        raise VoxError(
            ErrorKind.TOKEN_INVALID,
            "Refresh token required",
            details="Send Authorization: Bearer <refresh_token>",
        )
    result = await state.identity.refresh(token)
    return RefreshOut(token=result.access_token, expires_in=result.expires_in, refresh_token=result.refresh_token)
