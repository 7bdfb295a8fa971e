"""Two PJSIP phones call each other through Voxswitch (B2BUA): digest on the INVITE, ringing,
answer, audio both ways relayed by our RTP endpoints, mid-call DTMF, hold and resume by re-INVITE
passed from one leg to the other, hang-up propagated, one call record."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.conftest import PASSWORDS, SipServer
from tests.peers import audio
from tests.peers.pjsua import PjsuaAgent

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


def test_two_pjsip_phones_talk_through_voxswitch(tmp_path: Path, voxswitch_sip: Callable[..., SipServer]) -> None:
    vx = voxswitch_sip()
    tone_a = audio.write_tone(tmp_path / "a440.wav", 440.0, seconds=4.0)
    tone_b = audio.write_tone(tmp_path / "b1000.wav", 1000.0, seconds=4.0)
    with PjsuaAgent(tmp_path, name="alice") as a, PjsuaAgent(tmp_path, name="bob") as b:
        alice = a.add_account(
            vx.aor("1001"), registrar=f"sip:{vx.address()}", username="1001", password=PASSWORDS["1001"]
        )
        bob = b.add_account(
            vx.aor("1002"),
            registrar=f"sip:{vx.address()}",
            username="1002",
            password=PASSWORDS["1002"],
            auto_answer=200,
            answer_delay_ms=500,
        )
        a.wait_registered(alice, timeout=10)
        b.wait_registered(bob, timeout=10)

        call = a.make_call(alice, vx.aor("1002"))
        incoming = b.wait_incoming(timeout=10)
        a.wait_call_state(call, "confirmed", timeout=10)
        b.wait_call_state(incoming, "confirmed", timeout=10)
        a.wait_media(call, timeout=10)
        b.wait_media(incoming, timeout=10)
        a.play(call, tone_a)
        b.play(incoming, tone_b)
        a.record(call, tmp_path / "alice-heard.wav")
        b.record(incoming, tmp_path / "bob-heard.wav")
        time.sleep(2.0)
        heard_by_alice = a.stop_record(call)
        heard_by_bob = b.stop_record(incoming)

        a.send_dtmf(call, "5", method="rfc2833")  # mid-call DTMF crosses the relay
        assert b.wait_event("dtmf_received", call=incoming, timeout=5)["digit"] == "5"

        mark = b.mark()
        a.hold(call)  # alice's re-INVITE (sendonly) is answered by us and passed on to bob
        b.wait_media(incoming, "remote_hold", since=mark, timeout=10)
        a.unhold(call)
        b.wait_media(incoming, "active", since=mark, timeout=10)
        a.hangup(call)
        b.wait_call_state(incoming, "disconnected", timeout=10)

    bob_wav, alice_wav = audio.read_wav(heard_by_bob), audio.read_wav(heard_by_alice)
    assert audio.tone_ratio(bob_wav.samples, bob_wav.rate, 440.0) > 0.5  # alice's tone reached bob
    assert audio.tone_ratio(alice_wav.samples, alice_wav.rate, 1000.0) > 0.5  # and bob's reached alice

    deadline = time.monotonic() + 5
    while True:  # the call record is written as the call ends
        with sqlite3.connect(vx.server.env["VOXSWITCH_DATA_DIR"] + "/voxswitch.db") as db:
            rows = db.execute(
                "SELECT status, direction, from_number, to_number, duration_seconds FROM calls"
            ).fetchall()
        if (rows and rows[0][0] == "completed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(rows) == 1
    status, direction, caller, callee, duration = rows[0]
    assert (status, direction, caller, callee) == ("completed", "internal", "1001", "1002")
    assert duration is not None and duration >= 2
