"""The voice-call API with a number that is a registered device's extension: the device rings
instead of the trunk, hears the text (the words recognised offline), and with `Record` the call is
recorded. The device is created through the PBX API, as an operator would."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from tests.peers import audio
from tests.peers.pjsua import PjsuaAgent
from tests.peers.sipp import SippConfig, SippProcess, scenario
from tests.support.speech import recognize
from tests.voice_calls.conftest import VoiceServer

TEXT = "Your appointment is tomorrow at nine in the morning."
OTHERS = [
    "Your appointment is tomorrow at ten in the morning.",
    "Your order has shipped and will arrive tomorrow.",
    "Please call us back to confirm your appointment.",
]


def test_an_extension_rings_the_registered_device_which_hears_the_text_and_is_recorded(
    tmp_path: Path, voice_server: Callable[..., VoiceServer]
) -> None:
    # the trunk is there (and would refuse): a device's extension must not go to it
    with SippProcess(
        SippConfig(scenario("uas_reject"), template={"status": "503", "reason": "Nope"}), tmp_path
    ) as trunk:
        vx = voice_server(trunk)
        with vx.client() as c:
            r = c.post("/api/devices", json={"name": "Front desk", "username": "2001", "password": "desk-secret-2001"})
        assert r.status_code in (200, 201), r.text
        sip_port = vx.server.env["VOXSWITCH_SIP_PORT"]
        with PjsuaAgent(tmp_path, name="desk") as desk:
            account = desk.add_account(
                f"sip:2001@127.0.0.1:{sip_port}",
                registrar=f"sip:127.0.0.1:{sip_port}",
                username="2001",
                password="desk-secret-2001",
                auto_answer=200,
            )
            desk.wait_registered(account, timeout=10)
            accepted = vx.call(ToNumber="2001", Text=TEXT, Record=True)
            incoming = desk.wait_incoming(timeout=15)
            desk.wait_media(incoming, timeout=10)
            desk.record(incoming, tmp_path / "desk-heard.wav")
            desk.wait_call_state(incoming, "disconnected", timeout=30)
            heard = desk.stop_record(incoming)
        final = vx.wait_final([accepted["call_id"]], timeout=30)[accepted["call_id"]]
        time.sleep(0.5)
        with sqlite3.connect(vx.server.env["VOXSWITCH_DATA_DIR"] + "/voxswitch.db") as db:
            recordings = db.execute("SELECT path, channels, duration_seconds FROM recordings").fetchall()
        trunk_invites = [m for m in trunk.stop().messages if m.is_request and m.method == "INVITE"]
    assert final["status"] == "completed", final
    assert trunk_invites == [], "the extension went to the device, not the trunk"
    result = recognize(heard, [TEXT, *OTHERS])
    assert result.says(TEXT), result
    assert len(recordings) == 1 and recordings[0][1] == 1 and recordings[0][2] >= 2.0, recordings
    assert audio.read_wav(Path(recordings[0][0])).seconds >= 2.0
