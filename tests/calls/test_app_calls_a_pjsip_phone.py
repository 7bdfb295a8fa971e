"""An app places a call to a registered PJSIP phone, which answers and records: the recording carries
the spoken sentence (energy while it is spoken, quiet after, and the words, recognised offline), and the
call leaves its record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.peers import audio
from tests.peers.pjsua import PjsuaAgent
from tests.sip_e2e.conftest import running
from tests.support.speech import recognize
from voxswitch.engine.apps import CallContext, app
from voxswitch.store.models import CallRecord

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


SENTENCE = "This is Voxswitch calling you with a short recorded test."
# What else the recogniser may hear: sentences sharing words with SENTENCE, and other apps' prompts
# (tests/support_selfcheck/test_speech.py checks that these, among others, are told apart).
OTHER_SENTENCES = (
    "Voxswitch is calling you to record a short test.",
    "This is a test call from Voxswitch.",
    "Enter your code and press pound.",
    "Please leave a message after the tone.",
)


@app("test-speak-then-wait")
async def speak_then_wait(ctx: CallContext) -> None:
    await ctx.say(SENTENCE)
    await ctx.pause(4)
    await ctx.hangup()


async def test_an_app_calls_a_phone_that_records_the_speech(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    async for vx in running(sip_settings()):
        await vx.device("1002", "secret-1002")
        with PjsuaAgent(tmp_path, name="bob") as b:
            bob = b.add_account(
                f"sip:1002@127.0.0.1:{vx.udp}",
                registrar=f"sip:127.0.0.1:{vx.udp}",
                username="1002",
                password="secret-1002",
                auto_answer=200,
            )
            await asyncio.to_thread(b.wait_registered, bob, 10)
            call = await vx.state.engine.sip.calls.originate("1002", "test-speak-then-wait")
            incoming = await asyncio.to_thread(b.wait_incoming, None, 10)
            await asyncio.to_thread(b.wait_call_state, incoming, "confirmed", 10)
            await asyncio.to_thread(b.record, incoming, tmp_path / "bob-heard.wav")
            await asyncio.sleep(4.5)
            heard = await asyncio.to_thread(b.stop_record, incoming)
            await asyncio.to_thread(b.wait_call_state, incoming, "disconnected", 15)
        await asyncio.wait_for(call.ended.wait(), 10)
        wav = audio.read_wav(heard)
        second = wav.rate
        speech = [audio.rms_dbfs(wav.samples[i * second : (i + 1) * second]) for i in range(2)]
        after = audio.rms_dbfs(wav.samples[int(3.6 * second) : int(4.3 * second)])
        assert all(level > -40 for level in speech), speech  # the sentence, spoken in the first seconds
        assert after < -50, after  # and quiet once it has been said
        said = await asyncio.to_thread(recognize, heard, [SENTENCE, *OTHER_SENTENCES])
        assert said.says(SENTENCE), said  # the app's words, offline-recognised (tests/support/speech.py)
        assert said.words[0].start < 0.5 and said.words[-1].end < 3.6, said.words  # in the seconds of speech
        async with vx.state.db.session() as s:
            row = (await s.execute(select(CallRecord).where(CallRecord.id == call.id))).scalar_one()
        assert (row.status, row.direction, row.to_number) == ("completed", "outbound", "1002")
        assert row.duration_seconds is not None and row.duration_seconds >= 4


GATHERED: list[str] = []


@app("test-gather-info")
async def gather_info_digits(ctx: CallContext) -> None:
    await ctx.answer()
    GATHERED.append(await ctx.gather(digits=5, timeout=8.0))
    await ctx.hangup()


async def test_sip_info_dtmf_from_a_phone_reaches_gather(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    GATHERED.clear()
    async for vx in running(sip_settings()):
        await vx.device("1001", "secret-1001")
        with PjsuaAgent(tmp_path, name="alice") as a:
            alice = a.add_account(
                f"sip:1001@127.0.0.1:{vx.udp}",
                registrar=f"sip:127.0.0.1:{vx.udp}",
                username="1001",
                password="secret-1001",
            )
            await asyncio.to_thread(a.wait_registered, alice, 10)
            call = await asyncio.to_thread(a.make_call, alice, f"sip:test-gather-info@127.0.0.1:{vx.udp}")
            await asyncio.to_thread(a.wait_call_state, call, "confirmed", 10)
            await asyncio.to_thread(a.send_dtmf, call, "39#", "info")
            await asyncio.to_thread(a.wait_call_state, call, "disconnected", 15)
        assert GATHERED == ["39"]
