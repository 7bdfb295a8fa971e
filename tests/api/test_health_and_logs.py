"""Health probes answer from real checks; the logs API filters, masks secrets and streams live."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil

import httpx
import pytest
import websockets

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, login, open_client
from tests.support.http_server import serve_in_thread


async def test_health_has_the_union_of_the_documents_fields(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/health"):
        body = (await client.get(path)).json()
        assert set(body) == {
            "status",
            "timestamp",
            "version",
            "uptime_seconds",
            "active_calls",
            "sip_server",
            "tts_service",
        }
        assert body["status"] == "healthy" and body["active_calls"] == 0 and body["tts_service"] == "espeak"
    assert (await client.get("/api/live")).json()["status"] == "alive"
    ready = await client.get("/api/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "storage": "ok", "cache": "ok"}
    assert (await client.get("/readiness")).json() == {"database": "ok", "storage": "ok", "cache": "ok"}
    status = (await client.get("/status")).json()
    assert status["application"]["status"] == "running" and status["services"]["database"]["status"] == "connected"
    assert status["metrics"]["total_calls_today"] == 0
    info = (await client.get("/api/info")).json()
    assert info["configuration"]["sip_port"] == "5060" and "GET /health" in info["endpoints"]
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and "voxswitch_http_requests_total" in metrics.text


async def test_readiness_fails_when_storage_is_gone(make_settings) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    settings = make_settings()
    async for c in open_client(create_app(settings)):
        shutil.rmtree(settings.data_dir)
        settings.data_dir.write_text("not a directory any more")
        r = await c.get("/readiness")
        assert r.status_code == 503 and r.json()["storage"] == "error"
        assert (await c.get("/api/ready")).json()["status"] == "not_ready"


async def test_health_reports_trunk_and_counts_real_calls(make_settings) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app
    from voxswitch.store.models import CallRecord

    app = create_app(make_settings(sip_trunk_ip="trunk.example.net", tts_service="google"))
    async for c in open_client(app):
        async with app.state.vox.db.session() as s:
            s.add_all(
                [
                    CallRecord(direction="outbound", status="ringing"),
                    CallRecord(direction="inbound", status="completed", duration_seconds=30),
                ]
            )
            await s.commit()
        body = (await c.get("/health")).json()
        assert body["sip_server"] == "trunk.example.net" and body["tts_service"] == "google"
        assert body["active_calls"] == 1
        metrics = (await c.get("/status")).json()["metrics"]
        assert metrics["total_calls_today"] == 2 and metrics["success_rate"] == 0.5


async def test_logs_latest_filters_and_masks_secrets(client: httpx.AsyncClient) -> None:
    token = bearer(await login(client))
    log = logging.getLogger("voxswitch.test")
    log.info("call initiated from +15551234567", extra={"call_id": "call_123"})
    log.warning("trunk said no; password=hunter2 token: abc")
    log.error("an error line")
    r = await client.get("/api/logs/latest?lines=1000&level=WARNING", headers=token)
    assert r.status_code == 200
    body = r.json()
    messages = [e["message"] for e in body["logs"]]
    assert "an error line" in messages and not any("initiated" in m for m in messages)
    assert all(e["level"] in ("WARNING", "ERROR", "CRITICAL") for e in body["logs"])
    assert "hunter2" not in r.text and "password=********" in r.text
    assert body["filtered_lines"] == len(body["logs"]) <= body["total_lines"]
    info = (await client.get("/api/logs/latest?lines=1000&level=INFO", headers=token)).json()["logs"]
    tagged = [e for e in info if e["message"].startswith("call initiated")]
    assert tagged and tagged[-1]["call_id"] == "call_123" and tagged[-1]["module"]
    last = (await client.get("/api/logs/latest?lines=1", headers=token)).json()
    assert len(last["logs"]) == 1
    future = (await client.get("/api/logs/latest?since=2999-01-01T00:00:00Z", headers=token)).json()
    assert future["logs"] == []
    for bad, field in (
        ("lines=0", "lines"),
        ("lines=1001", "lines"),
        ("level=LOUD", "level"),
        ("since=yesterday", "since"),
    ):
        e = await client.get(f"/api/logs/latest?{bad}", headers=token)
        assert e.status_code == 400 and e.json()["error"]["code"] == "INVALID_REQUEST", bad
        assert e.json()["error"]["details"]["parameter"] == field


async def test_logs_stream_websocket_pushes_new_entries(make_settings) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    app = create_app(make_settings(admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD))
    with serve_in_thread(app, lifespan="on") as base:
        async with httpx.AsyncClient(base_url=base) as c:
            login_body = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            token = (await c.post("/auth/login", json=login_body)).json()["token"]
        ws_url = base.replace("http://", "ws://") + "/api/logs/stream"
        async with websockets.connect(f"{ws_url}?token={token}") as ws:
            await asyncio.sleep(0.2)  # let the server subscribe before the line is logged
            logging.getLogger("voxswitch.test").warning("streamed line for the websocket")
            async with asyncio.timeout(10):
                while True:
                    entry = json.loads(await ws.recv())
                    if entry["message"] == "streamed line for the websocket":
                        break
            assert entry["level"] == "WARNING" and entry["timestamp"].endswith("Z")
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:  # closed before accept: HTTP 403
            async with websockets.connect(ws_url) as ws:
                await ws.recv()
        assert refused.value.response.status_code == 403
