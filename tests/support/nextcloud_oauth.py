"""A local server speaking Nextcloud's OAuth2 and OCS user protocol, and plain OIDC discovery.

Nextcloud's `oauth2` app: authorization codes are exchanged at
`/index.php/apps/oauth2/api/v1/token` (RFC 6749 §4.1.3, client credentials in the form body) and
the response names the account in `user_id`; the account itself is read from
`/ocs/v2.php/cloud/user?format=json` with `OCS-APIRequest: true`. Errors follow RFC 6749 §5.2.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CLIENT_ID = "voxswitch-client"
CLIENT_SECRET = "s3cret-client-value"


@dataclass
class Account:
    user_id: str
    email: str
    display_name: str


@dataclass
class NextcloudOAuth:
    accounts: dict[str, Account] = field(default_factory=dict)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (user_id, redirect_uri)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> user_id
    base_url: str = ""

    def grant(self, user_id: str, redirect_uri: str) -> str:
        """What the browser round trip would leave behind: a one-time authorization code."""
        code = secrets.token_urlsafe(16)
        self.codes[code] = (user_id, redirect_uri)
        return code

    def app(self) -> Starlette:
        async def token(request: Request) -> JSONResponse:
            form = await request.form()
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if form.get("grant_type") != "authorization_code":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            entry = self.codes.pop(str(form.get("code")), None)  # single use
            if entry is None or entry[1] != form.get("redirect_uri"):
                return JSONResponse({"error": "invalid_grant", "error_description": "code unknown"}, status_code=400)
            access = secrets.token_urlsafe(24)
            self.tokens[access] = entry[0]
            return JSONResponse(
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": secrets.token_urlsafe(24),
                    "user_id": entry[0],
                }
            )

        def account_for(request: Request) -> Account | None:
            auth = request.headers.get("authorization", "")
            user_id = self.tokens.get(auth.removeprefix("Bearer ").strip())
            return self.accounts.get(user_id) if user_id else None

        async def ocs_user(request: Request) -> JSONResponse:
            account = account_for(request)
            if account is None or request.headers.get("ocs-apirequest") != "true":
                return JSONResponse({"ocs": {"meta": {"status": "failure", "statuscode": 997}}}, status_code=401)
            data = {"id": account.user_id, "email": account.email, "displayname": account.display_name}
            return JSONResponse({"ocs": {"meta": {"status": "ok", "statuscode": 200}, "data": data}})

        async def userinfo(request: Request) -> JSONResponse:
            account = account_for(request)
            if account is None:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return JSONResponse({"sub": account.user_id, "email": account.email, "name": account.display_name})

        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.base_url,
                    "token_endpoint": f"{self.base_url}/index.php/apps/oauth2/api/v1/token",
                    "userinfo_endpoint": f"{self.base_url}/userinfo",
                }
            )

        return Starlette(
            routes=[
                Route("/index.php/apps/oauth2/api/v1/token", token, methods=["POST"]),
                Route("/ocs/v2.php/cloud/user", ocs_user),
                Route("/userinfo", userinfo),
                Route("/.well-known/openid-configuration", discovery),
            ]
        )
