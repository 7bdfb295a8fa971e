"""Queued calls end to end: `POST /voice/call` on a served Voxswitch, out through SIPp as the trunk
(which challenges every INVITE), speech checked at an RTP sink the trunk's SDP points at; the
trunk's busy, silence and 503 each end in their documented state with the SIP reason."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.peers import audio
from tests.peers.rtp_sink import RtpSink, voiced_seconds
from tests.peers.sipp import SippConfig, SippProcess, scenario
from tests.support.http_server import serve_in_thread
from tests.voice_calls.conftest import REALM, VoiceServer, invites_by_number, trunk_messages
from voxswitch.jobs.webhooks import SIGNATURE_HEADER, verify

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]
TEXT = "Your appointment is confirmed for Tuesday at three in the afternoon. Thank you."


def answering_trunk(sink: RtpSink, ring_ms: int = 300) -> SippConfig:
    return SippConfig(
        scenario("uas_challenge_ring_answer_sink"),
        calls=None,
        template={"ring_ms": str(ring_ms)},
        keys={"realm": REALM, "algorithm": "MD5", "sink_host": sink.host, "sink_port": str(sink.port)},
    )


def spoken_by_espeak(text: str, tmp: Path) -> tuple[float, float]:
    """How long espeak-ng (the CLI, at its defaults like our in-process engine) takes to say `text`:
    the span from first to last sound, and the voiced seconds in it."""
    wav_path = tmp / "reference.wav"
    subprocess.run(["espeak-ng", "-w", str(wav_path), text], check=True, capture_output=True, timeout=30)
    wav = audio.read_wav(wav_path)
    speech = audio.trim_silence(wav.samples, threshold=300)
    return len(speech) / wav.rate, voiced_seconds(speech, wav.rate)


def test_a_queued_call_completes_and_the_trunk_hears_the_whole_text(
    tmp_path: Path, voice_server: Callable[..., VoiceServer]
) -> None:
    received: list[tuple[dict[str, Any], str]] = []

    async def hook(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        received.append((json.loads(body), headers.get(SIGNATURE_HEADER.lower(), "") + "|" + body.decode()))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with (
        RtpSink() as sink,
        SippProcess(answering_trunk(sink), tmp_path, name="trunk") as trunk,
        serve_in_thread(hook) as hook_url,
    ):
        vx = voice_server(trunk, VOXSWITCH_WEBHOOK_SECRET="webhook-secret")
        accepted = vx.call(ToNumber="+15551230001", Text=TEXT, StatusCallback=f"{hook_url}/status")
        final = vx.wait_final([accepted["call_id"]], timeout=60)[accepted["call_id"]]
        time.sleep(0.5)  # the last webhook may still be on its way
        streams = sink.snapshot()
        messages = trunk_messages(trunk)
    assert (final["status"], final["task_status"], final["error_message"]) == ("completed", "SUCCESS", None)
    assert final["started_at"] and final["completed_at"] and final["attempts"] == 1
    # one call, challenged once: two INVITEs with one Call-ID, the second with credentials
    assert {k: len(v) for k, v in invites_by_number(messages).items()} == {"+15551230001": 1}
    invites = [m for m in messages if m.direction == "received" and m.is_request and m.method == "INVITE"]
    assert len(invites) == 2 and invites[1].header("Proxy-Authorization")
    # what the trunk heard: one stream whose speech lasts as long as espeak-ng takes to say the text
    assert len(streams) == 1, [(s.ssrc, len(s.packets)) for s in streams]
    heard = audio.trim_silence(streams[0].pcm(), threshold=300)
    span, voiced = spoken_by_espeak(TEXT, tmp_path)
    heard_span, heard_voiced = len(heard) / 8000, voiced_seconds(heard)
    assert span > 3.0, "the reference text takes seconds to say"
    assert abs(heard_span - span) < 0.15 * span, (heard_span, span)
    assert heard_voiced >= 0.85 * voiced, (heard_voiced, voiced)
    assert final["duration"] is not None and final["duration"] >= span - 0.5
    # the webhook saw every state in order, each signed with the configured secret
    states = [body["status"] for body, _ in received]
    assert states == ["dialing", "ringing", "in_progress", "completed"], states
    for _, signed in received:
        header, _, raw = signed.partition("|")
        assert verify(b"webhook-secret", raw.encode(), header)
    assert not verify(b"another-secret", received[0][1].partition("|")[2].encode(), received[0][1].partition("|")[0])


@pytest.mark.parametrize(
    ("status", "reason", "state"),
    [(486, "Busy Here", "busy"), (503, "Service Unavailable", "failed"), (404, "Not Found", "failed")],
)
def test_the_trunks_refusal_ends_the_call_in_its_state_with_the_reason(
    tmp_path: Path, voice_server: Callable[..., VoiceServer], status: int, reason: str, state: str
) -> None:
    config = SippConfig(scenario("uas_reject"), calls=None, template={"status": str(status), "reason": reason})
    with SippProcess(config, tmp_path, name="trunk") as trunk:
        vx = voice_server(trunk)
        accepted = vx.call(ToNumber="+15551230002")
        final = vx.wait_final([accepted["call_id"]], timeout=30)[accepted["call_id"]]
    assert (final["status"], final["task_status"]) == (state, "FAILURE")
    assert final["error_message"] == f"{status} {reason}" and final["sip_status"] == status
    assert final["duration"] is None and final["completed_at"]


def test_no_answer_is_cancelled_after_the_ring_time(tmp_path: Path, voice_server: Callable[..., VoiceServer]) -> None:
    with SippProcess(SippConfig(scenario("uas_no_answer"), calls=None), tmp_path, name="trunk") as trunk:
        vx = voice_server(trunk, VOXSWITCH_VOICE_RING_SECONDS="2")
        accepted = vx.call(ToNumber="+15551230003")
        final = vx.wait_final([accepted["call_id"]], timeout=30)[accepted["call_id"]]
        messages = trunk_messages(trunk)
    assert (final["status"], final["task_status"]) == ("no_answer", "FAILURE")
    assert final["error_message"] == "no answer after 2 s of ringing"
    assert any(m.direction == "received" and m.method == "CANCEL" and m.is_request for m in messages)


def test_busy_is_retried_by_policy_with_backoff_then_given_up(
    tmp_path: Path, voice_server: Callable[..., VoiceServer]
) -> None:
    config = SippConfig(scenario("uas_reject"), calls=None, template={"status": "486", "reason": "Busy Here"})
    with SippProcess(config, tmp_path, name="trunk") as trunk:
        vx = voice_server(trunk, VOXSWITCH_VOICE_RETRY_BUSY="2", VOXSWITCH_VOICE_RETRY_BACKOFF_SECONDS="0.5")
        accepted = vx.call(ToNumber="+15551230004")
        seen: set[str] = set()
        stop = threading.Event()

        def watch() -> None:  # the job waits as `queued` with task_status RETRY between attempts
            while not stop.is_set():
                view = vx.status(accepted["call_id"])
                seen.add(f"{view['status']}/{view['task_status']}")
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        final = vx.wait_final([accepted["call_id"]], timeout=30)[accepted["call_id"]]
        stop.set()
        watcher.join()
        messages = trunk_messages(trunk)
    assert (final["status"], final["attempts"], final["error_message"]) == ("busy", 3, "486 Busy Here")
    assert len(invites_by_number(messages)["+15551230004"]) == 3, "three attempts, three distinct calls"
    assert "queued/RETRY" in seen, seen


def test_a_bulk_of_fifty_all_complete(tmp_path: Path, voice_server: Callable[..., VoiceServer]) -> None:
    with RtpSink() as sink, SippProcess(answering_trunk(sink, ring_ms=100), tmp_path, name="trunk") as trunk:
        vx = voice_server(trunk, VOXSWITCH_VOICE_CONCURRENCY="10", VOXSWITCH_VOICE_CALLS_PER_SECOND="25")
        calls = [{"ToNumber": f"+1555100{i:04d}", "FromNumber": "12156", "Text": "Hi."} for i in range(50)]
        with vx.client() as c:
            r = c.post("/voice/bulk", json={"calls": calls})
        assert r.status_code == 202, r.text
        ids = r.json()["call_ids"]
        finals = vx.wait_final(ids, timeout=90)
        with vx.client() as c:
            metrics = c.get("/api/metrics").json()
        messages = trunk_messages(trunk)
    assert {v["status"] for v in finals.values()} == {"completed"}
    per_number = invites_by_number(messages)
    assert len(per_number) == 50 and all(len(v) == 1 for v in per_number.values())
    assert len(sink.streams) == 50, "every call spoke to the trunk"
    assert metrics["calls"]["completed"] == 50 and metrics["calls"]["success_rate"] == 1.0
    assert metrics["system"]["celery_workers"] == "Active"


def test_the_cli_queues_a_call_and_follows_it_to_the_end(
    tmp_path: Path, voice_server: Callable[..., VoiceServer]
) -> None:
    with RtpSink() as sink, SippProcess(answering_trunk(sink), tmp_path, name="trunk") as trunk:
        vx = voice_server(trunk)
        done = vx.server.cli(
            "call", "+15551230005", "--text", "Hello from the command line.", "--wait", "--timeout", "60"
        )
        refused = vx.server.cli("call", "not-a-number", "--text", "Hi.")
        messages = trunk_messages(trunk)
    assert done.returncode == 0, done.stderr
    call_id, status = done.stdout.split()[:2]
    assert status == "completed" and "queued call" in done.stderr
    assert vx.status(call_id)["status"] == "completed"
    assert len(invites_by_number(messages)["+15551230005"]) == 1
    assert refused.returncode == 2 and "ToNumber" in refused.stderr


def test_a_retransmitted_200_is_not_taken_for_another_fork(
    tmp_path: Path, voice_server: Callable[..., VoiceServer]
) -> None:
    """The trunk resends its 200 OK before our ACK (it does when we are slow under load): the copy
    must be ACKed again, not ACKed-and-BYEd as another fork's answer, which ended the trunk's side
    of the call while we kept speaking into it until the media timeout."""
    # SIPp sends the copy on its next turn: our ACK for the first 200 can come before it, which SIPp
    # would take for an unexpected message and abort on. Ignore that one; the copy's ACK follows.
    config = SippConfig(
        scenario("uas_answer_twice_sink"),
        calls=1,
        keys={"sink_host": "127.0.0.1", "sink_port": "9"},
        extra_args=("-default_behaviors", "all,-abortunexp"),
    )
    with RtpSink() as sink:
        config.keys = {"sink_host": sink.host, "sink_port": str(sink.port)}
        with SippProcess(config, tmp_path, name="trunk") as trunk:
            vx = voice_server(trunk, VOXSWITCH_MEDIA_TIMEOUT_SECONDS="8")
            accepted = vx.call(ToNumber="+15551230006", Text=TEXT)
            final = vx.wait_final([accepted["call_id"]], timeout=40)[accepted["call_id"]]
            result = trunk.wait(timeout=10)
    assert (final["status"], final["error_message"]) == ("completed", None), final
    assert result.ok, result.describe()
    byes = result.received("BYE")
    assert len({m.header("Via") for m in byes}) == 1, "one BYE, ours, after the text was spoken"
    assert "spoken" in (byes[0].header("Reason") or "")
