"""Calls into apps, with SIPp as the caller: the app answers, speaks (RTP reaches SIPp), collects the
exact RFC 2833 digits SIPp plays from sip-tester's pcaps, hangs up; the call leaves its record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.peers.sipp import SippConfig, dtmf_pcap, run_sipp
from tests.sip_e2e.conftest import running
from voxswitch.engine.apps import CallContext, app
from voxswitch.store.models import CallRecord

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]
SCENARIOS = Path(__file__).parent / "scenarios"


def caller(vx: Any, service: str, digits: str = "1111", *, speech: str | None = None, **extra: Any) -> SippConfig:
    """SIPp as device 1001 calling `service`: speech (sip-tester's g711a.pcap unless given), then the
    four RFC 2833 `digits` from sip-tester's pcaps, then it waits for our BYE."""
    keys = ("dtmf_4", "dtmf_2", "dtmf_7", "dtmf_pound")
    template = {k: str(dtmf_pcap(d)) for k, d in zip(keys, digits, strict=True)}
    if speech is not None:
        template["g711a_pcap"] = speech
    return SippConfig(
        SCENARIOS / "uac_invite_dtmf_wait_bye.xml",
        target=f"127.0.0.1:{vx.udp}",
        service=service,
        auth_user="1001",
        auth_password="secret-1001",
        template=template,
        **extra,
    )


HEARD: dict[str, str] = {}
SENT: dict[str, int] = {}


@app("test-gather")
async def gather_and_report(ctx: CallContext) -> None:
    """A user's app, registered like any other: say something, gather, remember, hang up."""
    await ctx.say("Enter your code and press pound.")
    SENT[ctx.call.id] = ctx.leg.media.endpoint.packets_out
    HEARD[ctx.call.id] = await ctx.gather(digits=10, timeout=8.0)
    await ctx.hangup()


async def test_sipp_calls_an_app_that_speaks_and_gathers_dtmf(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    HEARD.clear()
    SENT.clear()
    async for vx in running(sip_settings(sip_digest_algorithms=["MD5"])):
        await vx.device("1001", "secret-1001")
        config = caller(vx, "test-gather", "427#")
        result = await asyncio.to_thread(run_sipp, config, tmp_path, 60.0)
        assert result.ok, result.describe()
        assert list(HEARD.values()) == ["427"]
        # the sentence went out as RTP at 50 packets a second: about 1.5 s of speech from espeak
        assert 40 <= next(iter(SENT.values())) <= 200
        call_id = next(iter(HEARD))
        async with vx.state.db.session() as s:
            row = (await s.execute(select(CallRecord).where(CallRecord.id == call_id))).scalar_one()
        assert row.status == "completed" and row.direction == "inbound" and row.to_number == "test-gather"
        assert row.from_number == "1001" and row.duration_seconds is not None and row.duration_seconds >= 1
        assert row.answered_at is not None and row.ended_at is not None


async def test_unknown_app_is_404_and_leaves_no_call(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    async for vx in running(sip_settings(sip_digest_algorithms=["MD5"])):
        await vx.device("1001", "secret-1001")
        config = caller(vx, "no-such-app", recv_timeout_ms=3000)
        result = await asyncio.to_thread(run_sipp, config, tmp_path, 30.0)
        assert not result.ok
        assert any(getattr(m, "status", None) == 404 for m in result.messages)
        async with vx.state.db.session() as s:
            assert (await s.execute(select(CallRecord))).scalars().all() == []


@app("test-wait")
async def wait_a_long_time(ctx: CallContext) -> None:
    await ctx.answer()
    await ctx.pause(60)


async def test_a_far_end_that_vanishes_ends_on_media_timeout(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    async for vx in running(sip_settings(sip_digest_algorithms=["MD5"], media_timeout_seconds=3.0)):
        await vx.device("1001", "secret-1001")
        one_digit = str(dtmf_pcap("1"))  # bursts of RTP for ~3 s (the scenario's pauses), then silence
        config = caller(vx, "test-wait", speech=one_digit)
        result = await asyncio.to_thread(run_sipp, config, tmp_path, 30.0)
        assert result.ok, result.describe()  # SIPp got our BYE
        bye = result.received("BYE")
        assert bye and "media timeout" in str(bye[0])
        for _ in range(50):  # the record's final state is written once our BYE's transaction ends
            async with vx.state.db.session() as s:
                row = (await s.execute(select(CallRecord))).scalar_one()
            if row.status != "in_progress":
                break
            await asyncio.sleep(0.1)
        assert row.status == "failed" and row.hangup_cause == "media timeout" and row.answered_at is not None


@app("test-record")
async def record_three_seconds(ctx: CallContext) -> None:
    ctx.call.data["recording"] = await ctx.record(max_seconds=3.0)
    RECORDED[ctx.call.id] = ctx.call.data["recording"].path
    await ctx.hangup()


RECORDED: dict[str, str] = {}


async def test_an_app_records_what_the_caller_says(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    from tests.peers import audio
    from voxswitch.store.models import Recording

    RECORDED.clear()
    async for vx in running(sip_settings(sip_digest_algorithms=["MD5"])):
        await vx.device("1001", "secret-1001")
        config = caller(vx, "test-record")  # sip-tester's 7 s of A-law speech, then digits
        result = await asyncio.to_thread(run_sipp, config, tmp_path, 60.0)
        assert result.ok, result.describe()
        ((call_id, path),) = RECORDED.items()
        async with vx.state.db.session() as s:
            row = (await s.execute(select(Recording))).scalar_one()
        assert row.call_id == call_id and row.path == path and row.channels == 1 and row.sample_rate == 8000
        assert 2.9 <= row.duration_seconds <= 3.1 and Path(path).is_relative_to(vx.state.settings.data_dir)
        wav = audio.read_wav(Path(path))
        # SIPp speaks (g711a.pcap) until its first DTMF pcap replaces the speech at 1.5 s
        assert audio.rms_dbfs(wav.samples[: wav.rate]) > -40  # the caller's speech, decoded from PCMA
