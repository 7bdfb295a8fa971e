"""200 queued calls against a slow trunk; the server is killed with SIGKILL mid-way and started
again on the same data directory. Every call must end exactly once: no job forgotten, none placed
twice (counted at the trunk as distinct Call-IDs per dialled number)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import start_server
from tests.peers.rtp_sink import RtpSink
from tests.peers.sipp import SippConfig, SippProcess, scenario
from tests.voice_calls.conftest import REALM, VoiceServer, invites_by_number, login, trunk_env, trunk_messages

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]
CALLS = 200


def test_sigkill_mid_queue_loses_nothing_and_places_nothing_twice(
    tmp_path: Path, voice_server: Callable[..., VoiceServer]
) -> None:
    with RtpSink() as sink:
        trunk_config = SippConfig(
            scenario("uas_challenge_ring_answer_sink"),
            calls=None,
            template={"ring_ms": "1500"},  # a slow trunk: every call rings 1.5 s before it is answered
            keys={"realm": REALM, "algorithm": "MD5", "sink_host": sink.host, "sink_port": str(sink.port)},
        )
        with SippProcess(trunk_config, tmp_path, name="trunk") as trunk:
            settings = {"VOXSWITCH_VOICE_CONCURRENCY": "20", "VOXSWITCH_VOICE_CALLS_PER_SECOND": "40"}
            first = voice_server(trunk, **settings)
            numbers = [f"+1555200{i:04d}" for i in range(CALLS)]
            with first.client() as c:
                r = c.post(
                    "/voice/bulk",
                    json={"calls": [{"ToNumber": n, "FromNumber": "12156", "Text": "Hi."} for n in numbers]},
                )
            assert r.status_code == 202, r.text
            ids = r.json()["call_ids"]
            to_number = dict(zip(ids, numbers, strict=True))

            # kill it once a good part of the queue is done and calls are in flight
            deadline = time.monotonic() + 60
            with first.client() as c:
                while time.monotonic() < deadline:
                    calls = c.get("/api/metrics").json()["calls"]
                    if calls["completed"] >= CALLS // 3 and calls["processing"] > 0:
                        break
                    time.sleep(0.1)
            first.server.proc.kill()
            first.server.proc.wait(timeout=10)
            at_kill = calls

            # the same data directory, a new process (new HTTP and SIP ports)
            again = tmp_path / "restarted"
            again.mkdir()
            env = {**trunk_env(trunk), **settings, "VOXSWITCH_DATA_DIR": str(tmp_path / "data")}
            second = start_server(again, **env)
            try:
                vx = VoiceServer(second, login(second.url))
                finals = vx.wait_final(ids, timeout=90)
            finally:
                second.proc.terminate()
                second.proc.wait(timeout=15)
            messages = trunk_messages(trunk)

    assert 0 < at_kill["completed"] < CALLS and at_kill["processing"] > 0, at_kill
    statuses = Counter(v["status"] for v in finals.values())
    placed = invites_by_number(messages)
    twice = {n: len(cids) for n, cids in placed.items() if len(cids) > 1}
    assert not twice, f"placed more than once: {twice}"
    interrupted = [i for i, v in finals.items() if v["status"] == "failed"]
    for call_id in interrupted:
        assert finals[call_id]["error_message"].startswith("interrupted:"), finals[call_id]
    assert statuses["completed"] + len(interrupted) == CALLS, statuses
    assert 0 < len(interrupted) <= 20, "at most the calls in flight at the kill (the concurrency) are lost"
    for call_id, view in finals.items():
        if view["status"] == "completed":
            assert len(placed[to_number[call_id]]) == 1, "a completed call reached the trunk once"
        assert view["attempts"] == 1
    # jobs that were queued or merely claimed at the kill were placed by the second process
    assert statuses["completed"] > at_kill["completed"] + at_kill["processing"]
