"""A conference of three PJSIP phones through Voxswitch: each hears the other two, not itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.conftest import PASSWORDS, SipServer
from tests.peers import audio
from tests.peers.pjsua import PjsuaAgent

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]
TONES = {"1001": 440.0, "1002": 1000.0, "1003": 1700.0}


def test_three_phones_in_a_conference_hear_each_other(tmp_path: Path, voxswitch_sip: Callable[..., SipServer]) -> None:
    vx = voxswitch_sip()
    agents = {user: PjsuaAgent(tmp_path, name=f"p{user}") for user in TONES}
    try:
        calls = {}
        for user, agent in agents.items():
            agent.start()
            account = agent.add_account(
                vx.aor(user), registrar=f"sip:{vx.address()}", username=user, password=PASSWORDS[user]
            )
            agent.wait_registered(account, timeout=10)
            call = agent.make_call(account, vx.aor("conference"))
            agent.wait_call_state(call, "confirmed", timeout=10)
            agent.wait_media(call, timeout=10)
            calls[user] = call
        for user, agent in agents.items():
            agent.play(calls[user], audio.write_tone(tmp_path / f"{user}.wav", TONES[user], seconds=5.0), loop=True)
        time.sleep(0.5)
        for user, agent in agents.items():
            agent.record(calls[user], tmp_path / f"{user}-heard.wav")
        time.sleep(2.0)
        heard = {user: agent.stop_record(calls[user]) for user, agent in agents.items()}
        for user, agent in agents.items():
            agent.hangup(calls[user])
    finally:
        for agent in agents.values():
            agent.close()
    for user, path in heard.items():
        wav = audio.read_wav(path)
        samples = wav.samples[wav.rate // 2 :]  # after the mixer and jitter buffers settle
        others = [u for u in TONES if u != user]
        shares = {u: audio.tone_ratio(samples, wav.rate, TONES[u]) for u in TONES}
        assert all(shares[u] > 0.2 for u in others), (user, shares)  # both other voices
        assert shares[user] < 0.05, (user, shares)  # and not your own
