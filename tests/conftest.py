"""Shared fixtures: settings in a temp data dir, the app on SQLite or a throwaway PostgreSQL, clients."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.support import throwaway

# The suite must not pick up an operator's environment (fresh-debian.sh sets an admin, for one).
_DOCUMENT_NAMES = {
    "DATABASE_URL",
    "REDIS_URL",
    "SIP_TRUNK_IP",
    "SIP_TRUNK_PORT",
    "SIP_USERNAME",
    "SIP_PASSWORD",
    "TTS_SERVICE",
    "GOOGLE_TTS_API_KEY",
    "AZURE_TTS_KEY",
    "AWS_ACCESS_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
}
for _name in list(os.environ):
    if _name.startswith("VOXSWITCH_") or _name in _DOCUMENT_NAMES:
        del os.environ[_name]

# Property tests check behaviour, not speed: with four test workers on two cores an example can take
# longer than Hypothesis' 200 ms deadline without anything being wrong.
hypothesis_settings.register_profile("voxswitch", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("voxswitch")

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "Adm1n-Passw0rd!"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[throwaway.Postgres]:
    pg, proc = throwaway.start_postgres()
    try:
        yield pg
    finally:
        throwaway.stop(proc, remove=pg.datadir.parent)


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    port, proc = throwaway.start_redis()
    try:
        yield port
    finally:
        throwaway.stop(proc)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (the embedded SQLite default) or a fresh database on the throwaway PostgreSQL."""
    if request.param == "sqlite":
        yield None
        return
    pg: throwaway.Postgres = request.getfixturevalue("pg_server")
    name = f"t_{secrets.token_hex(6)}"
    pg.psql(f"CREATE DATABASE {name}")
    try:
        yield pg.url(name)  # a plain postgresql:// URL, as the documents write them
    finally:
        pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Any]:
    from voxswitch.config import Settings

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "argon2_time_cost": 1,
            "argon2_memory_kib": 1024,
            "rate_limits_enabled": False,
            "sip_enabled": False,
            "log_level": "INFO",
            "gc_freeze": False,  # many apps in one test process: freezing would keep each one's heap
            "gc_full_every_seconds": 0,  # nor take over the process's collector schedule
            # Nothing in the suite may reach Twilio itself: a closed local port unless a test says so.
            "twilio_api_base_url": "http://127.0.0.1:9",
        }
        base.update(overrides)
        return Settings(**base)

    return make


async def open_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def client(make_settings: Callable[..., Any], database_url: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app in-process, with a first admin, on SQLite and on PostgreSQL."""
    from voxswitch.api.app import create_app

    app = create_app(make_settings(database_url=database_url, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD))
    async for c in open_client(app):
        yield c


async def login(client: httpx.AsyncClient, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
    r = await client.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
