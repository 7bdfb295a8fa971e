"""Authentication dependencies shared by every router.

A Bearer token from any login endpoint, an API key, or the PBX session cookie: whichever the client
sends, the route gets a `Principal`. The OpenAPI document declares both schemes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from voxswitch.api.state import AppState, get_state
from voxswitch.errors import ErrorKind, VoxError
from voxswitch.services.identity import Principal

bearer_scheme = HTTPBearer(auto_error=False, description="JWT access token from any login, or an API key")
cookie_scheme = APIKeyCookie(name="voxswitch_session", auto_error=False, description="PBX session cookie")

State = Annotated[AppState, Depends(get_state)]


async def optional_principal(
    request: Request,
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal | None:
    if credentials is not None:
        principal = await state.identity.authenticate_token(credentials.credentials)
    else:
        cookie = request.cookies.get(state.settings.session_cookie_name)
        if not cookie:
            return None
        principal = await state.identity.authenticate_cookie(cookie)
    request.state.principal = principal
    return principal


async def current_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise VoxError(ErrorKind.TOKEN_INVALID, "Authentication required", details="Missing bearer token")
    return principal


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise VoxError(ErrorKind.AUTHORIZATION, "Permission denied", details="Administrator role required")
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
OptionalUser = Annotated[Principal | None, Depends(optional_principal)]
