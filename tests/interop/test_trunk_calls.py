"""Calls through the SIP trunk, with SIPp as the trunk: a phone calls an outside number and Voxswitch
answers the trunk's digest challenge on the INVITE; the trunk's busy, refusal and silence reach the
phone as the right SIP status and the call record as the right state; a trusted SIP peer hands
Voxswitch a call to place out (the benchmark's path: SIPp UAC -> Voxswitch -> SIPp UAS)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.conftest import PASSWORDS, SipServer
from tests.peers import audio, digest
from tests.peers.pjsua import PjsuaAgent
from tests.peers.sipp import SippConfig, SippProcess, run_sipp, scenario

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]
SCENARIOS = Path(__file__).parent / "scenarios"
TRUNK_USER, TRUNK_PASSWORD, REALM = "trunkuser", "trunk-secret", "trunk.example"


def trunk_env(uas: SippProcess, **extra: str) -> dict[str, str]:
    host, port = uas.address.rsplit(":", 1)
    return {
        "SIP_TRUNK_IP": host,
        "SIP_TRUNK_PORT": port,
        "SIP_USERNAME": TRUNK_USER,
        "SIP_PASSWORD": TRUNK_PASSWORD,
        **extra,
    }


def call_rows(vx: SipServer, until: Callable[[list[tuple]], bool], timeout: float = 8.0) -> list[tuple]:
    """The calls table, read until `until` holds (records are written as calls end)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(vx.server.env["VOXSWITCH_DATA_DIR"] + "/voxswitch.db") as db:
            rows = db.execute(
                "SELECT status, direction, from_number, to_number, hangup_cause, hangup_status, duration_seconds, mos"
                " FROM calls"
            ).fetchall()
        if until(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def register(agent: PjsuaAgent, vx: SipServer, user: str) -> str:
    account = agent.add_account(vx.aor(user), registrar=f"sip:{vx.address()}", username=user, password=PASSWORDS[user])
    agent.wait_registered(account, timeout=10)
    return account


def test_a_phone_calls_out_through_a_trunk_that_challenges_the_invite(
    tmp_path: Path, voxswitch_sip: Callable[..., SipServer]
) -> None:
    uas_config = SippConfig(
        scenario("uas_challenge_answer_play"),
        template={"status": "407", "reason": "Proxy Authentication Required", "challenge_header": "Proxy-Authenticate"},
        keys={"realm": REALM, "algorithm": "MD5"},
    )
    with SippProcess(uas_config, tmp_path, name="trunk") as trunk:
        vx = voxswitch_sip(**trunk_env(trunk))
        with PjsuaAgent(tmp_path, name="alice") as a:
            alice = register(a, vx, "1001")
            call = a.make_call(alice, f"sip:+15551230001@{vx.address()}")
            a.wait_call_state(call, "confirmed", timeout=10)
            a.wait_media(call, timeout=10)
            a.record(call, tmp_path / "heard.wav")
            time.sleep(2.5)
            stats = a.call_stats(call)
            heard = a.stop_record(call)
            a.hangup(call)
            a.wait_call_state(call, "disconnected", timeout=10)
        result = trunk.wait(timeout=10)
    assert result.ok, result.describe()
    invites = result.received("INVITE")
    assert len(invites) == 2, "one INVITE, challenged, then one with credentials"
    credentials = invites[-1].header("Proxy-Authorization")
    assert credentials and digest.verify_authorization(credentials, "INVITE", TRUNK_PASSWORD, username=TRUNK_USER)
    assert invites[-1].start_line.startswith("INVITE sip:+15551230001@")
    # The phone talks PCMU with us; the trunk answered PCMA: Voxswitch transcodes, and the phone
    # hears the trunk's A-law speech.
    assert stats["codec"] == "PCMU/8000"
    wav = audio.read_wav(heard)
    assert audio.rms_dbfs(wav.samples) > -45, "the phone should hear the trunk's speech"
    rows = call_rows(vx, lambda r: bool(r) and r[0][0] == "completed")
    assert len(rows) == 1
    status, direction, caller, callee, _cause, _code, duration, mos = rows[0]
    assert (status, direction, caller, callee) == ("completed", "outbound", "1001", "+15551230001")
    assert duration is not None and duration >= 2
    assert mos is not None and mos > 4.0, "a clean loopback call estimates a high MOS"


@pytest.mark.parametrize(
    ("status", "reason", "state", "phone_code"),
    [(486, "Busy Here", "busy", 486), (503, "Service Unavailable", "failed", 503), (404, "Not Found", "failed", 404)],
)
def test_the_trunks_refusal_reaches_the_phone_and_the_record(
    tmp_path: Path, voxswitch_sip: Callable[..., SipServer], status: int, reason: str, state: str, phone_code: int
) -> None:
    uas_config = SippConfig(scenario("uas_reject"), template={"status": str(status), "reason": reason})
    with SippProcess(uas_config, tmp_path, name="trunk") as trunk:
        vx = voxswitch_sip(**trunk_env(trunk))
        with PjsuaAgent(tmp_path, name="alice") as a:
            alice = register(a, vx, "1001")
            call = a.make_call(alice, f"sip:+15551230002@{vx.address()}")
            ended = a.wait_call_state(call, "disconnected", timeout=10)
        result = trunk.wait(timeout=10)
    assert result.ok, result.describe()
    assert ended["code"] == phone_code
    rows = call_rows(vx, lambda r: bool(r) and r[0][0] != "initiated")
    assert [(r[0], r[4], r[5]) for r in rows] == [(state, f"{status} {reason}", status)]


def test_no_answer_from_the_trunk_is_cancelled_after_the_ring_time(
    tmp_path: Path, voxswitch_sip: Callable[..., SipServer]
) -> None:
    with SippProcess(SippConfig(scenario("uas_no_answer")), tmp_path, name="trunk") as trunk:
        vx = voxswitch_sip(**trunk_env(trunk, VOXSWITCH_RING_TIMEOUT_SECONDS="2"))
        with PjsuaAgent(tmp_path, name="alice") as a:
            alice = register(a, vx, "1001")
            call = a.make_call(alice, f"sip:+15551230003@{vx.address()}")
            ringing = a.wait_call_state(call, "early", timeout=10)  # the trunk's 180 reached the phone
            ended = a.wait_call_state(call, "disconnected", timeout=10)
        result = trunk.wait(timeout=10)
    assert result.ok, result.describe()  # the scenario requires our CANCEL
    assert ringing["code"] == 180 and ended["code"] == 480
    rows = call_rows(vx, lambda r: bool(r) and r[0][0] != "initiated" and r[0][0] != "ringing")
    assert [r[0] for r in rows] == ["no_answer"]


def test_a_trusted_peer_hands_over_a_call_that_goes_out_through_the_trunk(
    tmp_path: Path, voxswitch_sip: Callable[..., SipServer]
) -> None:
    """SIPp UAC (trusted, no digest) -> Voxswitch (B2BUA) -> SIPp UAS (the trunk), audio both ways."""
    uas_config = SippConfig(scenario("uas_answer_play"))
    with SippProcess(uas_config, tmp_path, name="trunk") as trunk:
        vx = voxswitch_sip(**trunk_env(trunk, VOXSWITCH_SIP_TRUSTED_SOURCES='["127.0.0.1"]'))
        caller = run_sipp(
            SippConfig(SCENARIOS / "uac_invite_play_bye.xml", target=vx.address(), service="+15551230004"),
            tmp_path,
            timeout=30,
            name="caller",
        )
        result = trunk.wait(timeout=10)
    assert caller.ok, caller.describe()
    assert result.ok, result.describe()
    rows = call_rows(vx, lambda r: bool(r) and r[0][0] == "completed")
    assert [(r[0], r[1], r[3]) for r in rows] == [("completed", "outbound", "+15551230004")]


def test_the_trunks_early_media_reaches_the_phone_before_the_answer(
    tmp_path: Path, voxswitch_sip: Callable[..., SipServer]
) -> None:
    """183 with SDP from the trunk: we answer the phone's INVITE with our own 183 and relay what the
    trunk plays (an operator's announcement, a ringback it generates) before anyone answers."""
    with SippProcess(SippConfig(SCENARIOS / "uas_early_media_answer.xml"), tmp_path, name="trunk") as trunk:
        vx = voxswitch_sip(**trunk_env(trunk))
        with PjsuaAgent(tmp_path, name="alice") as a:
            alice = register(a, vx, "1001")
            call = a.make_call(alice, f"sip:+15551230005@{vx.address()}")
            early = a.wait_call_state(call, "early", timeout=10)
            a.wait_media(call, timeout=10)
            a.record(call, tmp_path / "early.wav")
            time.sleep(2.0)
            heard_early = a.stop_record(call)
            state_while_recording = a.call_info(call)["state"]
            a.wait_call_state(call, "confirmed", timeout=10)
            a.hangup(call)
            a.wait_call_state(call, "disconnected", timeout=10)
        result = trunk.wait(timeout=10)
    assert result.ok, result.describe()
    assert early["code"] == 183 and state_while_recording == "early"
    assert audio.rms_dbfs(audio.read_wav(heard_early).samples) > -45, "the trunk's early audio reached the phone"
