"""OAuth2 authorization-code exchange against the softphone surface's identity provider.

Speaks RFC 6749 §4.1.3 to the token endpoint (client credentials in the form body, as Nextcloud
expects), then asks who the token belongs to: an OpenID Connect userinfo endpoint (`sub`, `email`,
`name`) or Nextcloud's OCS user endpoint (`ocs.data.id`, `email`, `displayname`). Endpoints come
from configuration or from OIDC discovery (`/.well-known/openid-configuration`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from voxswitch.config import Settings
from voxswitch.errors import ErrorKind, FieldProblem, VoxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExternalIdentity:
    subject: str
    email: str
    display_name: str


class OAuthClient:
    def __init__(self, settings: Settings, *, timeout: float = 10.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._token_url = settings.oauth_token_url
        self._userinfo_url = settings.oauth_userinfo_url

    @property
    def configured(self) -> bool:
        s = self._settings
        return bool(s.oauth_client_id and (s.oauth_token_url or s.oauth_issuer))

    async def exchange(self, code: str, redirect_uri: str) -> ExternalIdentity:
        """Trade an authorization code for the identity of the user who granted it."""
        s = self._settings
        if not self.configured:
            raise VoxError(ErrorKind.UNAVAILABLE, "No OAuth2 provider is configured")
        if s.oauth_redirect_uris and redirect_uri not in s.oauth_redirect_uris:
            raise VoxError.invalid("redirect_uri", "is not a registered redirect URI", redirect_uri)
        async with httpx.AsyncClient(timeout=self._timeout) as http:
            await self._discover(http)
            assert self._token_url is not None
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": s.oauth_client_id or "",
                "client_secret": s.oauth_client_secret.get_secret_value() if s.oauth_client_secret else "",
            }
            try:
                resp = await http.post(self._token_url, data=form, headers={"Accept": "application/json"})
            except httpx.HTTPError as exc:
                raise VoxError(ErrorKind.UNAVAILABLE, "OAuth2 provider unreachable") from exc
            if resp.status_code == 401 or _oauth_error_code(resp) == "invalid_client":
                # RFC 6749 §5.2 invalid_client: our client credentials are wrong, not the user's code.
                log.error("OAuth2 provider rejected our client credentials (check VOXSWITCH_OAUTH_CLIENT_*)")
                raise VoxError(ErrorKind.UNAVAILABLE, "OAuth2 provider rejected this server's client credentials")
            if resp.status_code == 400:  # RFC 6749 §5.2: invalid_grant and friends
                raise VoxError(
                    ErrorKind.BAD_REQUEST,
                    "Invalid authorization code",
                    [FieldProblem("code", _oauth_error(resp))],
                    code="INVALID_AUTHORIZATION_CODE",
                )
            if resp.status_code != 200:
                raise VoxError(ErrorKind.UNAVAILABLE, f"OAuth2 provider answered {resp.status_code}")
            token = _json(resp)
            access = token.get("access_token")
            if not isinstance(access, str) or not access:
                raise VoxError(ErrorKind.AUTHENTICATION, "Authentication failed: provider gave no access token")
            return await self._identity(http, access, token)

    async def _discover(self, http: httpx.AsyncClient) -> None:
        issuer = self._settings.oauth_issuer
        if self._token_url or not issuer:
            return
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            meta = _json(await http.get(url))
        except httpx.HTTPError as exc:
            raise VoxError(ErrorKind.UNAVAILABLE, "OAuth2 provider discovery failed") from exc
        self._token_url = meta.get("token_endpoint")
        self._userinfo_url = self._userinfo_url or meta.get("userinfo_endpoint")
        if not self._token_url:
            raise VoxError(ErrorKind.UNAVAILABLE, "OAuth2 provider metadata has no token_endpoint")

    async def _identity(self, http: httpx.AsyncClient, access: str, token: dict[str, Any]) -> ExternalIdentity:
        info: dict[str, Any] = {}
        if self._userinfo_url:
            headers = {
                "Authorization": f"Bearer {access}",
                "OCS-APIRequest": "true",
                "Accept": "application/json",
            }
            try:
                resp = await http.get(self._userinfo_url, headers=headers)
            except httpx.HTTPError as exc:
                raise VoxError(ErrorKind.UNAVAILABLE, "OAuth2 userinfo endpoint unreachable") from exc
            if resp.status_code != 200:
                raise VoxError(ErrorKind.AUTHENTICATION, "Authentication failed: provider refused the token")
            info = _json(resp)
            info = info.get("ocs", {}).get("data", info) if "ocs" in info else info
        subject = str(info.get("sub") or info.get("id") or token.get("user_id") or "")
        if not subject:
            raise VoxError(ErrorKind.AUTHENTICATION, "Authentication failed: provider named no user")
        display = str(info.get("name") or info.get("displayname") or info.get("display-name") or subject)
        email = info.get("email") or ""
        if not isinstance(email, str) or "@" not in email:
            host = urlsplit(self._token_url or "").hostname or ""
            if "." not in host or host.replace(".", "").isdigit() or ":" in host:
                host = "oauth.voxswitch.example"
            email = f"{re.sub(r'[^A-Za-z0-9._-]', '_', subject)}@{host}"
        return ExternalIdentity(subject=subject, email=email, display_name=display)


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError as exc:
        raise VoxError(ErrorKind.UNAVAILABLE, "OAuth2 provider sent something that is not JSON") from exc
    if not isinstance(data, dict):
        raise VoxError(ErrorKind.UNAVAILABLE, "OAuth2 provider sent an unexpected document")
    return data


def _oauth_error_code(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", ""))
    except (ValueError, AttributeError):
        return ""


def _oauth_error(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("error_description") or body.get("error") or "rejected by the provider")
    except ValueError:
        return "rejected by the provider"
