"""Apps that connect callers: `dial` from an app that answered first (the caller hears ringback until
the callee answers), a dialled call recorded in stereo (the caller left, the callee right), a
recording paused and resumed, and digits from a phone that only sends in-band tones."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from tests.calls.test_app_calls_with_sipp import SCENARIOS
from tests.peers import audio
from tests.peers.pcap import inband_dtmf_ulaw, write_rtp_pcap
from tests.peers.pjsua import PjsuaAgent
from tests.peers.sipp import SippConfig, run_sipp
from tests.sip_e2e.conftest import Voxswitch, running
from voxswitch.engine.apps import CallContext, DialResult, app
from voxswitch.store.models import CallRecord, Recording

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]
RESULTS: dict[str, Any] = {}


@app("test-greet-then-dial")
async def greet_then_dial(ctx: CallContext) -> None:
    await ctx.say("Connecting you.")
    RESULTS["dial"] = await ctx.dial("1002", record=True)


@app("test-record-pause")
async def record_with_a_pause(ctx: CallContext) -> None:
    await ctx.answer()
    recorder = ctx.record_call(stereo=False)
    await ctx.pause(1.0)
    recorder.pause()
    await ctx.pause(1.5)
    recorder.resume()
    await ctx.pause(1.0)
    RESULTS["row"] = await recorder.stop(ctx.engine.db)
    await ctx.hangup()


@app("test-gather-inband")
async def gather_inband(ctx: CallContext) -> None:
    await ctx.answer()
    RESULTS["digits"] = await ctx.gather(digits=3, timeout=6.0)
    await ctx.hangup()


async def phone(vx: Voxswitch, tmp_path: Path, user: str, **extra: Any) -> tuple[PjsuaAgent, str]:
    await vx.device(user, f"secret-{user}")
    agent = PjsuaAgent(tmp_path, name=f"phone{user}").start()
    account = agent.add_account(
        f"sip:{user}@127.0.0.1:{vx.udp}",
        registrar=f"sip:127.0.0.1:{vx.udp}",
        username=user,
        password=f"secret-{user}",
        **extra,
    )
    await asyncio.to_thread(agent.wait_registered, account, 10)
    return agent, account


def channel_tone(path: str, channel: int, hz: float) -> float:
    with wave.open(path) as w:
        assert w.getnchannels() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)[:, channel]
    from array import array

    return audio.tone_ratio(array("h", data.tobytes()), 8000, hz)


async def test_an_app_answers_then_dials_and_the_call_is_recorded_in_stereo(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    RESULTS.clear()
    tone_a = audio.write_tone(tmp_path / "a500.wav", 500.0, seconds=8.0)
    tone_b = audio.write_tone(tmp_path / "b1000.wav", 1000.0, seconds=8.0)
    async for vx in running(sip_settings()):
        a, alice = await phone(vx, tmp_path, "1001")
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200, answer_delay_ms=2500)
        try:
            call = await asyncio.to_thread(a.make_call, alice, f"sip:test-greet-then-dial@127.0.0.1:{vx.udp}")
            await asyncio.to_thread(a.wait_call_state, call, "confirmed", 10)
            await asyncio.to_thread(a.record, call, tmp_path / "alice-while-ringing.wav")
            incoming = await asyncio.to_thread(b.wait_incoming, None, 10)
            await asyncio.sleep(1.5)  # bob's phone rings for 2.5 s: alice hears ringback meanwhile
            ringing = await asyncio.to_thread(a.stop_record, call)
            await asyncio.to_thread(b.wait_call_state, incoming, "confirmed", 10)
            await asyncio.to_thread(a.play, call, tone_a)
            await asyncio.to_thread(b.play, incoming, tone_b)
            await asyncio.sleep(2.5)
            await asyncio.to_thread(b.hangup, incoming)
            await asyncio.to_thread(a.wait_call_state, call, "disconnected", 10)
        finally:
            a.close()
            b.close()
        for _ in range(50):
            if "dial" in RESULTS:
                break
            await asyncio.sleep(0.1)
        async with vx.state.db.session() as s:
            rows = (await s.execute(select(Recording))).scalars().all()
            record = (await s.execute(select(CallRecord))).scalar_one()
    result: DialResult = RESULTS["dial"]
    assert result.status == "completed" and result.answered_by == "1002" and result.duration >= 2
    heard = audio.read_wav(ringing)
    assert audio.tone_ratio(heard.samples, heard.rate, 440.0) + audio.tone_ratio(heard.samples, heard.rate, 480.0) > 0.3
    assert len(rows) == 1 and rows[0].channels == 2 and rows[0].duration_seconds >= 2
    assert channel_tone(rows[0].path, 0, 500.0) > 0.4, "left: the caller (alice's tone)"
    assert channel_tone(rows[0].path, 1, 1000.0) > 0.4, "right: what the caller heard (bob's tone)"
    assert (record.status, record.app, record.hangup_cause) == ("completed", "test-greet-then-dial", "remote hangup")


async def test_a_paused_recording_leaves_the_paused_time_out(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    RESULTS.clear()
    async for vx in running(sip_settings()):
        a, alice = await phone(vx, tmp_path, "1001")
        try:
            call = await asyncio.to_thread(a.make_call, alice, f"sip:test-record-pause@127.0.0.1:{vx.udp}")
            await asyncio.to_thread(a.wait_call_state, call, "disconnected", 15)
        finally:
            a.close()
    row: Recording = RESULTS["row"]
    assert 1.8 <= row.duration_seconds <= 2.3, row.duration_seconds  # 3.5 s of call, 1.5 s paused


async def test_in_band_dtmf_tones_reach_gather(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    RESULTS.clear()
    tones = write_rtp_pcap(tmp_path / "tones.pcap", inband_dtmf_ulaw("159"))
    async for vx in running(sip_settings(sip_digest_algorithms=["MD5"])):
        await vx.device("1001", "secret-1001")
        config = SippConfig(
            SCENARIOS / "uac_invite_inband_wait_bye.xml",
            target=f"127.0.0.1:{vx.udp}",
            service="test-gather-inband",
            auth_user="1001",
            auth_password="secret-1001",
            template={"tones_pcap": str(tones)},
        )
        result = await asyncio.to_thread(run_sipp, config, tmp_path, 40.0)
        assert result.ok, result.describe()
    assert RESULTS["digits"] == "159"


@app("test-play-and-send-digits")
async def play_and_send_digits(ctx: CallContext) -> None:
    await ctx.play(RESULTS["wav"])  # a 16 kHz file: resampled to the call's 8 kHz
    await ctx.send_digits("42#")
    await ctx.pause(1.0)
    await ctx.hangup()


async def test_an_app_plays_a_wideband_file_and_sends_digits_to_a_phone(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    RESULTS.clear()
    RESULTS["wav"] = audio.write_tone(tmp_path / "tone16k.wav", 600.0, seconds=2.0, rate=16000)
    async for vx in running(sip_settings()):
        a, alice = await phone(vx, tmp_path, "1001")
        try:
            call = await asyncio.to_thread(a.make_call, alice, f"sip:test-play-and-send-digits@127.0.0.1:{vx.udp}")
            await asyncio.to_thread(a.wait_media, call, "active", 10)
            await asyncio.to_thread(a.record, call, tmp_path / "heard.wav")
            await asyncio.sleep(1.5)
            heard = await asyncio.to_thread(a.stop_record, call)
            first = await asyncio.to_thread(a.wait_event, "dtmf_received", 6, None, 0)
            await asyncio.to_thread(a.wait_call_state, call, "disconnected", 10)
            received = [e["digit"] for e in a.events("dtmf_received")]
            methods = {e.get("method") for e in a.events("dtmf_received")}
        finally:
            a.close()
    wav = audio.read_wav(heard)
    assert audio.tone_ratio(wav.samples, wav.rate, 600.0) > 0.8, "the file's tone, resampled, reached the phone"
    assert first["digit"] == "4" and received == ["4", "2", "#"], received
    assert methods == {"rfc2833"}
