"""The PBX API against a whole Voxswitch with real SIP peers: a device made through `/api/devices`
registers from SIPp with digest and shows in `/api/devices/registrations` and its events; a new
password drops its bindings and only the new password registers again; a deleted device cannot
register; a password-guessing source's ban is in the device's events; `/api/system/status` shows
the listeners, the registrations, the trunk's registration (SIPp as the trunk's registrar) and a
call while it is up; the call leaves its CDR."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer
from tests.peers.sipp import SippConfig, SippProcess, SippResult, run_sipp, scenario
from tests.sip_e2e.conftest import RawUdpClient, Voxswitch, running
from tests.sip_e2e.test_registrar_and_security import register

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


@asynccontextmanager
async def pbx(settings: Any) -> AsyncIterator[tuple[Voxswitch, httpx.AsyncClient, dict[str, str]]]:
    async for vx in running(settings):
        transport = httpx.ASGITransport(app=vx.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            r = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            yield vx, client, bearer(r.json()["access_token"])


def settings_for(sip_settings: Callable[..., Any], **extra: Any) -> Any:
    # SIPp 3.6 answers only MD5 challenges, and only the first one it reads
    return sip_settings(sip_digest_algorithms=["MD5"], admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD, **extra)


async def sipp_register(vx: Voxswitch, tmp_path: Path, user: str, password: str, name: str) -> SippResult:
    config = SippConfig(
        scenario("uac_register_digest"),
        target=f"127.0.0.1:{vx.udp}",
        service=user,
        auth_user=user,
        auth_password=password,
        keys={"expires": "300"},
        recv_timeout_ms=3000,
    )
    return await asyncio.to_thread(run_sipp, config, tmp_path, 30.0, name=name)


async def test_a_device_made_through_the_api_registers_and_its_credentials_and_deletion_take_effect(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    async with pbx(settings_for(sip_settings)) as (vx, client, admin):
        r = await client.post(
            "/api/devices", json={"name": "Desk", "username": "1001", "password": "first-secret"}, headers=admin
        )
        device = r.json()
        ok = await sipp_register(vx, tmp_path, "1001", "first-secret", "first")
        assert ok.ok, ok.describe()

        regs = (await client.get("/api/devices/registrations", headers=admin)).json()
        assert regs["pagination"]["total"] == 1
        reg = regs["data"][0]
        assert reg["device_id"] == device["id"] and reg["username"] == "1001"
        assert reg["source_host"] == "127.0.0.1" and reg["transport"] == "UDP" and reg["user_agent"] == "SIPp"
        assert reg["contact"] == f"sip:1001@127.0.0.1:{reg['source_port']};transport=UDP"
        assert 290 <= reg["expires_in"] <= 300
        assert (await client.get(f"/api/devices/{device['id']}", headers=admin)).json()["registered"] is True
        status = (await client.get("/api/system/status", headers=admin)).json()
        assert {listener["transport"] for listener in status["listeners"]} == {"UDP", "TCP", "TLS"}
        assert (status["devices"], status["registered_devices"], status["bindings"]) == (1, 1, 1)

        # a new password: the old binding is gone at once, the old password is refused, the new one works
        r = await client.put(f"/api/devices/{device['id']}", json={"password": "second-secret"}, headers=admin)
        assert r.status_code == 200 and r.json()["registered"] is False
        assert (await client.get("/api/devices/registrations", headers=admin)).json()["data"] == []
        stale = await sipp_register(vx, tmp_path, "1001", "first-secret", "stale")
        assert not stale.ok and [m.status for m in stale.messages if m.status][-1] == 401
        fresh = await sipp_register(vx, tmp_path, "1001", "second-secret", "fresh")
        assert fresh.ok, fresh.describe()
        events = (await client.get(f"/api/devices/{device['id']}/events", headers=admin)).json()
        kinds = [e["kind"] for e in events["data"]]
        assert kinds == ["registered", "credentials_changed", "registered"], kinds  # newest first
        assert events["data"][2]["source"] == f"127.0.0.1:{reg['source_port']}"  # where the first REGISTER came from

        # deleted: the account and its binding go with it, and REGISTER is challenged for ever
        assert (await client.delete(f"/api/devices/{device['id']}", headers=admin)).status_code == 204
        assert vx.state.engine.bindings.lookup("1001") == []
        gone = await sipp_register(vx, tmp_path, "1001", "second-secret", "gone")
        assert not gone.ok
        status = (await client.get("/api/system/status", headers=admin)).json()
        assert (status["devices"], status["registered_devices"]) == (0, 0)


async def test_a_ban_for_guessing_a_devices_password_is_among_its_events(sip_settings: Callable[..., Any]) -> None:
    async with pbx(settings_for(sip_settings, sip_ban_after=4)) as (vx, client, admin):
        device = (
            await client.post(
                "/api/devices", json={"name": "Desk", "username": "2001", "password": "the-real-one"}, headers=admin
            )
        ).json()
        attacker = RawUdpClient((vx.host, vx.udp))
        try:
            for guess in range(6):
                await register(attacker, "2001", f"guess-{guess}", wait=0.5)
        finally:
            attacker.close()
        for _ in range(50):  # the event is written by a task of the SIP server
            events = (await client.get(f"/api/devices/{device['id']}/events", headers=admin)).json()["data"]
            if events:
                break
            await asyncio.sleep(0.1)
        assert [e["kind"] for e in events] == ["banned"]
        assert events[0]["source"] == "127.0.0.1" and events[0]["username"] == "2001"
        assert "failures" in events[0]["detail"]


async def test_status_shows_the_trunk_registration_and_a_live_call_whose_cdr_follows(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    registrar = SippConfig(scenario("uas_registrar"), calls=None)
    with SippProcess(registrar, tmp_path, name="trunk-registrar") as trunk:
        settings = settings_for(
            sip_settings, sip_trunk_ip="127.0.0.1", sip_trunk_port=trunk.port, sip_trunk_register=True
        )
        async with pbx(settings) as (vx, client, admin):
            for _ in range(100):
                status = (await client.get("/api/system/status", headers=admin)).json()
                if status["trunk"]["state"] == "registered":
                    break
                await asyncio.sleep(0.05)
            t = status["trunk"]
            assert t["state"] == "registered" and t["last_error"] is None, t
            assert t["host"] == "127.0.0.1" and t["port"] == trunk.port and t["registers"] is True
            until = t["registered_until"]
            assert until is not None and abs(_epoch(until) - (time.time() + 600)) < 30  # the expiry it granted

            await client.post(
                "/api/devices", json={"name": "Desk", "username": "1001", "password": "secret-1001"}, headers=admin
            )
            caller = SippConfig(
                scenario("uac_invite_digest_play"),
                target=f"127.0.0.1:{vx.udp}",
                service="conference",
                auth_user="1001",
                auth_password="secret-1001",
                call_duration_ms=3000,
            )
            call = asyncio.create_task(asyncio.to_thread(run_sipp, caller, tmp_path, 40.0, name="caller"))
            active = 0
            for _ in range(100):
                active = (await client.get("/api/system/status", headers=admin)).json()["active_calls"]
                if active or call.done():
                    break
                await asyncio.sleep(0.05)
            assert active == 1
            result = await call
            assert result.ok, result.describe()
            for _ in range(50):
                cdrs = (await client.get("/api/cdrs", headers=admin)).json()
                if cdrs["data"] and cdrs["data"][0]["ended_at"]:
                    break
                await asyncio.sleep(0.1)
            assert cdrs["pagination"]["total"] == 1
            cdr = cdrs["data"][0]
            assert cdr["to_number"] == "conference" and cdr["app"] == "conference"
            assert cdr["status"] == "completed" and cdr["disposition"] == "answered"
            assert 2 <= cdr["duration"] <= 6 and cdr["answered_at"] and cdr["ended_at"]
            assert (await client.get(f"/api/cdrs/{cdr['id']}", headers=admin)).json() == cdr
            assert (await client.get("/api/system/status", headers=admin)).json()["active_calls"] == 0


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
