"""`voxswitch serve` and the admin commands, run as processes the way an operator runs them."""

from __future__ import annotations

import json
import signal

import httpx

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.e2e.conftest import Server, stop_server


def test_serve_answers_health_and_the_first_admin_can_log_in(server: Server) -> None:
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "healthy"
    r = httpx.post(f"{server.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin"
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(f"{server.url}{path}").status_code == 200
    tags = {t["name"] for t in httpx.get(f"{server.url}/openapi.json").json()["tags"]}
    assert {
        "pbx (GoSIP)",
        "agents (VoiceERA)",
        "softphone (SIPCall)",
        "callbot (PIC Prospect Incoming Callbot)",
    } <= tags
    # SIGTERM shuts down gracefully (uvicorn re-raises the signal once the app has stopped)
    assert stop_server(server) in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"] == "Application shutdown complete." for line in lines)
    # logs are JSON lines and never carry the admin password
    assert any(line["message"].startswith("voxswitch") for line in lines)
    assert ADMIN_PASSWORD not in server.log.read_text()


def test_cli_user_and_api_key_work_against_the_running_server(server: Server) -> None:
    made = server.cli("user", "create", "ops@example.com", "--password", "0ps-Passw0rd", "--can-call")
    assert made.returncode == 0, made.stderr
    dup = server.cli("user", "create", "ops@example.com", "--password", "0ps-Passw0rd")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    short = server.cli("user", "create", "x@example.com", "--password", "short")
    assert short.returncode == 2 and "password" in short.stderr

    key = server.cli("apikey", "create", "ops@example.com", "--name", "crm")
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip()
    assert secret.startswith("vxk_")
    me = httpx.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["email"] == "ops@example.com" and me.json()["can_call"] is True
    forged = httpx.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {secret[:-2]}xx"})
    assert forged.status_code == 401

    listed = server.cli("user", "list")
    assert "ops@example.com" in listed.stdout and "2 user(s)" in listed.stdout
    assert server.cli("migrate").stdout.strip().startswith("database at revision")


def test_config_show_masks_every_secret(server: Server) -> None:
    shown = server.cli(
        "config",
        "show",
        "--json",
        extra_env={
            "SIP_PASSWORD": "trunk-secret-1",
            "DATABASE_URL": "postgresql://vox:db-secret-2@db.example.com/vox",
            "VOXSWITCH_OAUTH_CLIENT_SECRET": "oauth-secret-3",
            "SIP_TRUNK_IP": "203.0.113.9",
        },
    )
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)
    for secret in ("trunk-secret-1", "db-secret-2", "oauth-secret-3", ADMIN_PASSWORD):
        assert secret not in shown.stdout
    assert config["sip_password"] == "********" and config["sip_trunk_ip"] == "203.0.113.9"
    assert config["database_url"] == "postgresql://vox:********@db.example.com/vox"
