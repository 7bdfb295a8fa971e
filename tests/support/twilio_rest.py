"""A local server speaking Twilio's REST API (2010-04-01) for the parts the PBX uses: the Account
resource and its IncomingPhoneNumbers list, paged the way Twilio pages (`PageSize`, `Page`,
`PageToken`, `next_page_uri`), behind HTTP Basic auth with the account sid and auth token, with
Twilio's error body (`{"code", "message", "more_info", "status"}`) on refusal."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API = "/2010-04-01"
DATE = "Mon, 30 Nov 2026 10:00:00 +0000"  # Twilio's dates are RFC 2822


def account_sid() -> str:
    return "AC" + secrets.token_hex(16)


def number_sid() -> str:
    return "PN" + secrets.token_hex(16)


@dataclass
class TwilioNumber:
    phone_number: str
    friendly_name: str
    voice: bool = True
    sms: bool = True
    mms: bool = False
    fax: bool = False
    sid: str = field(default_factory=number_sid)


@dataclass
class TwilioRest:
    account_sid: str
    auth_token: str
    numbers: list[TwilioNumber] = field(default_factory=list)
    max_page_size: int = 2  # smaller than clients ask for, so every list spans several pages
    requests: list[tuple[str, str, dict[str, str], str | None]] = field(default_factory=list)
    base_url: str = ""

    def _error(self, status: int, code: int, message: str) -> JSONResponse:
        body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
        return JSONResponse({**body, "status": status}, status_code=status)

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        user = password = None
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        self.requests.append((request.method, request.url.path, dict(request.query_params), user))
        return user == self.account_sid and password == self.auth_token

    def _number(self, n: TwilioNumber) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "beta": False,
            "capabilities": {"voice": n.voice, "sms": n.sms, "mms": n.mms, "fax": n.fax},
            "date_created": DATE,
            "date_updated": DATE,
            "friendly_name": n.friendly_name,
            "origin": "twilio",
            "phone_number": n.phone_number,
            "sid": n.sid,
            "status": "in-use",
            "uri": f"{API}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{n.sid}.json",
            "voice_method": "POST",
            "voice_url": None,
        }

    def app(self) -> Starlette:
        async def account(request: Request) -> JSONResponse:
            if not self._authorized(request):
                return self._error(401, 20003, "Authenticate")
            if request.path_params["sid"] != self.account_sid:
                return self._error(404, 20404, "The requested resource was not found")
            return JSONResponse(
                {
                    "sid": self.account_sid,
                    "friendly_name": "Voxswitch test account",
                    "status": "active",
                    "type": "Full",
                    "date_created": DATE,
                    "date_updated": DATE,
                    "uri": f"{API}/Accounts/{self.account_sid}.json",
                }
            )

        async def incoming(request: Request) -> JSONResponse:
            if not self._authorized(request):
                return self._error(401, 20003, "Authenticate")
            if request.path_params["sid"] != self.account_sid:
                return self._error(404, 20404, "The requested resource was not found")
            q = request.query_params
            size = min(int(q.get("PageSize", "50")), self.max_page_size)
            page = int(q.get("Page", "0"))
            start = page * size
            chunk = self.numbers[start : start + size]
            uri = f"{API}/Accounts/{self.account_sid}/IncomingPhoneNumbers.json"
            more = start + size < len(self.numbers)
            return JSONResponse(
                {
                    "incoming_phone_numbers": [self._number(n) for n in chunk],
                    "start": start,
                    "end": start + max(len(chunk) - 1, 0),
                    "page": page,
                    "page_size": size,
                    "uri": f"{uri}?PageSize={size}&Page={page}",
                    "first_page_uri": f"{uri}?PageSize={size}&Page=0",
                    "previous_page_uri": f"{uri}?PageSize={size}&Page={page - 1}" if page else None,
                    "next_page_uri": f"{uri}?PageSize={size}&Page={page + 1}&PageToken=PA{start + size}"
                    if more
                    else None,
                }
            )

        return Starlette(
            routes=[
                Route(API + "/Accounts/{sid}.json", account),
                Route(API + "/Accounts/{sid}/IncomingPhoneNumbers.json", incoming),
            ]
        )
