"""The PBX API under test: the whole app in-process with its state at hand, an admin's headers, a
plain user, and a snapshot of every PBX table to prove that a refused request changed nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, open_client
from voxswitch.store.models import BlockedNumber, CallRoute, Device, Did, SipEvent, SystemSetting

TABLES = (Device, Did, CallRoute, BlockedNumber, SystemSetting, SipEvent)


@dataclass
class Pbx:
    client: httpx.AsyncClient
    app: Any
    admin: dict[str, str]

    @property
    def state(self) -> Any:
        return self.app.state.vox

    async def user(self, email: str, password: str = "Us3r-Passw0rd!") -> tuple[dict[str, str], str]:
        """A signed-in non-admin: their headers and id."""
        r = await self.client.post("/api/users", json={"email": email, "password": password}, headers=self.admin)
        assert r.status_code == 201, r.text
        login = await self.client.post("/api/auth/login", json={"email": email, "password": password})
        return bearer(login.json()["access_token"]), r.json()["id"]

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every PBX table, as plain tuples."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        async with self.state.db.session() as s:
            for model in TABLES:
                columns = [c.name for c in model.__table__.columns]
                rows = (await s.execute(select(model))).scalars().all()
                out[model.__tablename__] = sorted(tuple(repr(getattr(r, c)) for c in columns) for r in rows)
        return out

    async def post(self, path: str, body: Any, *, status: int = 201) -> Any:
        r = await self.client.post(path, json=body, headers=self.admin)
        assert r.status_code == status, r.text
        return r.json()

    async def get(self, path: str, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        r = await self.client.get(path, headers=headers or self.admin)
        assert r.status_code == status, r.text
        return r.json()


async def running_pbx(settings: Any) -> AsyncIterator[Pbx]:
    from voxswitch.api.app import create_app

    app = create_app(settings)
    async for client in open_client(app):
        r = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        yield Pbx(client, app, bearer(r.json()["access_token"]))


def pbx_settings(make_settings: Callable[..., Any], database_url: str | None, **extra: Any) -> Any:
    return make_settings(database_url=database_url, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD, **extra)


def pbx_error(r: httpx.Response, status: int, code: str) -> set[str]:
    """Assert the PBX document's error shape and status; the fields it names."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code and body["error"]["message"], body
    assert all(set(d) == {"field", "message"} for d in body["error"]["details"]), body
    return {d["field"] for d in body["error"]["details"]}
