"""What callers hear through Voxswitch's media engine, with PJSIP phones on loopback: phones that share
no codec hear each other through transcoding (G.722 wideband against A-law), digits cross it, a held
phone hears music on hold, and a device registered from two phones rings both, the first to answer
taking the call and the other being cancelled."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.conftest import PASSWORDS, SipServer
from tests.peers import audio
from tests.peers.pjsua import PjsuaAgent

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def register(agent: PjsuaAgent, vx: SipServer, user: str, **extra: object) -> str:
    account = agent.add_account(
        vx.aor(user), registrar=f"sip:{vx.address()}", username=user, password=PASSWORDS[user], **extra
    )
    agent.wait_registered(account, timeout=10)
    return account


def test_phones_without_a_common_codec_hear_each_other_through_transcoding(
    tmp_path: Path, voxswitch_sip: Callable[..., SipServer]
) -> None:
    vx = voxswitch_sip()
    tone_a = audio.write_tone(tmp_path / "a440.wav", 440.0, seconds=5.0, rate=16000)
    tone_b = audio.write_tone(tmp_path / "b1000.wav", 1000.0, seconds=5.0)
    with (
        PjsuaAgent(tmp_path, name="alice", codecs=["G722/16000"]) as a,
        PjsuaAgent(tmp_path, name="bob", codecs=["PCMA/8000"]) as b,
    ):
        alice = register(a, vx, "1001")
        register(b, vx, "1002", auto_answer=200, answer_delay_ms=300)
        call = a.make_call(alice, vx.aor("1002"))
        incoming = b.wait_incoming(timeout=10)
        a.wait_media(call, timeout=10)
        b.wait_media(incoming, timeout=10)
        a.play(call, tone_a)
        b.play(incoming, tone_b)
        a.record(call, tmp_path / "alice-heard.wav")
        b.record(incoming, tmp_path / "bob-heard.wav")
        time.sleep(2.5)
        heard_by_alice, heard_by_bob = a.stop_record(call), b.stop_record(incoming)
        codec_a, codec_b = a.call_stats(call)["codec"], b.call_stats(incoming)["codec"]
        a.send_dtmf(call, "7", method="rfc2833")  # re-sent in bob's stream, re-timed
        assert b.wait_event("dtmf_received", call=incoming, timeout=5)["digit"] == "7"
        b.send_dtmf(incoming, "3", method="rfc2833")
        assert a.wait_event("dtmf_received", call=call, timeout=5)["digit"] == "3"
        a.hangup(call)
        b.wait_call_state(incoming, "disconnected", timeout=10)
    assert (codec_a, codec_b) == ("G722/16000", "PCMA/8000")
    bob_wav, alice_wav = audio.read_wav(heard_by_bob), audio.read_wav(heard_by_alice)
    assert audio.tone_ratio(bob_wav.samples, bob_wav.rate, 440.0) > 0.5, "alice's tone, transcoded, reached bob"
    assert audio.tone_ratio(alice_wav.samples, alice_wav.rate, 1000.0) > 0.5, "and bob's reached alice"


def test_a_held_phone_hears_music_on_hold(tmp_path: Path, voxswitch_sip: Callable[..., SipServer]) -> None:
    vx = voxswitch_sip()
    with PjsuaAgent(tmp_path, name="alice") as a, PjsuaAgent(tmp_path, name="bob") as b:
        alice = register(a, vx, "1001")
        register(b, vx, "1002", auto_answer=200)
        call = a.make_call(alice, vx.aor("1002"))
        incoming = b.wait_incoming(timeout=10)
        a.wait_media(call, timeout=10)
        b.wait_media(incoming, timeout=10)
        b.record(incoming, tmp_path / "before-hold.wav")
        time.sleep(1.5)
        before = b.stop_record(incoming)  # nobody plays anything: silence
        mark = b.mark()
        a.hold(call)
        b.wait_media(incoming, "remote_hold", since=mark, timeout=10)  # bob's phone was re-INVITEd sendonly
        b.record(incoming, tmp_path / "on-hold.wav")
        time.sleep(2.0)
        on_hold = b.stop_record(incoming)
        a.unhold(call)
        b.wait_media(incoming, "active", since=mark, timeout=10)
        a.hangup(call)
        b.wait_call_state(incoming, "disconnected", timeout=10)
    assert audio.rms_dbfs(audio.read_wav(before).samples) < -50
    assert audio.rms_dbfs(audio.read_wav(on_hold).samples) > -40, "music on hold reached the held phone"


def test_a_device_on_two_phones_rings_both_and_the_first_answer_wins(
    tmp_path: Path, voxswitch_sip: Callable[..., SipServer]
) -> None:
    vx = voxswitch_sip()
    with (
        PjsuaAgent(tmp_path, name="alice") as a,
        PjsuaAgent(tmp_path, name="desk") as desk,
        PjsuaAgent(tmp_path, name="mobile") as mobile,
    ):
        alice = register(a, vx, "1001")
        register(desk, vx, "1002")
        register(mobile, vx, "1002", auto_answer=200, answer_delay_ms=800)
        call = a.make_call(alice, vx.aor("1002"))
        ringing_desk = desk.wait_incoming(timeout=10)
        answered = mobile.wait_incoming(timeout=10)
        a.wait_call_state(call, "confirmed", timeout=10)
        mobile.wait_call_state(answered, "confirmed", timeout=10)
        cancelled = desk.wait_call_state(ringing_desk, "disconnected", timeout=10)
        a.hangup(call)
        mobile.wait_call_state(answered, "disconnected", timeout=10)
    assert cancelled["code"] == 487, "the phone that did not answer was cancelled"


def test_srtp_phones_talk_through_voxswitch_and_a_plain_one_is_refused(
    tmp_path: Path, voxswitch_sip: Callable[..., SipServer]
) -> None:
    """VOXSWITCH_SRTP=require: two PJSIP phones in mandatory SDES-SRTP hear each other through us (each
    leg keyed on its own, the relay decrypting and re-encrypting); a phone offering plain RTP gets 488."""
    vx = voxswitch_sip(VOXSWITCH_SRTP="require")
    tone_a = audio.write_tone(tmp_path / "a500.wav", 500.0, seconds=5.0)
    tone_b = audio.write_tone(tmp_path / "b1000.wav", 1000.0, seconds=5.0)
    with (
        PjsuaAgent(tmp_path, name="alice") as a,
        PjsuaAgent(tmp_path, name="bob") as b,
        PjsuaAgent(tmp_path, name="plain") as p,
    ):
        alice = register(a, vx, "1001", srtp="mandatory")
        register(b, vx, "1002", srtp="mandatory", auto_answer=200)
        plain = register(p, vx, "1003")
        call = a.make_call(alice, vx.aor("1002"))
        incoming = b.wait_incoming(timeout=10)
        a.wait_media(call, timeout=10)
        b.wait_media(incoming, timeout=10)
        a.play(call, tone_a)
        b.play(incoming, tone_b)
        a.record(call, tmp_path / "alice-heard.wav")
        b.record(incoming, tmp_path / "bob-heard.wav")
        time.sleep(2.0)
        heard_by_alice, heard_by_bob = a.stop_record(call), b.stop_record(incoming)
        a.hangup(call)
        b.wait_call_state(incoming, "disconnected", timeout=10)
        refused = p.make_call(plain, vx.aor("1002"))
        ended = p.wait_call_state(refused, "disconnected", timeout=10)
        offers = [m for m in a.sip_messages() if m.is_request and m.method == "INVITE"]
        answers = [m for m in a.sip_messages() if m.status == 200 and m.method == "INVITE"]
    assert "RTP/SAVP" in offers[-1].body and "a=crypto:" in answers[-1].body, "SDES keys were exchanged"
    bob_wav, alice_wav = audio.read_wav(heard_by_bob), audio.read_wav(heard_by_alice)
    assert audio.tone_ratio(bob_wav.samples, bob_wav.rate, 500.0) > 0.8, "alice's SRTP reached bob decrypted"
    assert audio.tone_ratio(alice_wav.samples, alice_wav.rate, 1000.0) > 0.8, "and bob's reached alice"
    assert ended["code"] == 488
