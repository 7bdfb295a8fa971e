"""baresip (driven over ctrl_tcp) against SIPp and against PJSIP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.interop_selfcheck.conftest import PASSWORD, REALM, TONE_HZ, USER, registrar_keys
from tests.peers import audio, digest, tls
from tests.peers.baresip import Baresip, account_line
from tests.peers.pjsua import PjsuaAgent
from tests.peers.sipp import SippConfig, SippProcess, Transport, scenario

pytestmark = [pytest.mark.interop, pytest.mark.timeout(30)]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registers_with_digest_md5_verified_by_sipp(tmp_path: Path, transport: Transport) -> None:
    registrar = SippConfig(scenario("uas_registrar_digest"), transport=transport, keys=registrar_keys())
    with SippProcess(registrar, tmp_path, name="registrar") as reg:
        aor = f"sip:{USER}@{reg.address}"
        # Written to baresip's accounts file, so it registers at start-up (add_account: at run time).
        with Baresip(tmp_path, accounts=[account_line(f"{aor};transport={transport}", password=PASSWORD)]) as bs:
            assert bs.version.startswith("1.")
            bs.wait_registered(aor)  # the REGISTER_OK event may come before ctrl_tcp is connected
            assert bs.registration(aor) == "OK"
        result = reg.wait(timeout=5)
    assert result.ok, result.describe()
    authorization = result.credentials("REGISTER")[0]
    assert authorization and digest.verify_authorization(authorization, "REGISTER", PASSWORD, realm=REALM)


def test_sha256_digest_is_not_supported(tmp_path: Path) -> None:
    """Pins a capability: Debian 12's baresip 1.0 / libre 1.1 answer only MD5 challenges."""
    registrar = SippConfig(scenario("uas_registrar_challenge"), keys=registrar_keys("SHA-256"))
    with SippProcess(registrar, tmp_path, name="registrar") as reg, Baresip(tmp_path) as bs:
        bs.add_account(f"sip:{USER}@{reg.address}", password=PASSWORD)
        event = bs.wait_event(["REGISTER_OK", "REGISTER_FAIL"])
        reg.stop(grace=0.5)
    assert event["type"] == "REGISTER_FAIL"
    assert "not implemented" in event["param"].lower()


def test_calls_sipp_and_records_its_audio(tmp_path: Path, tone_wav: Path) -> None:
    with (
        SippProcess(SippConfig(scenario("uas_answer_play")), tmp_path, name="uas") as uas,
        Baresip(tmp_path, audio_file=tone_wav, record=True) as bs,
    ):
        bs.add_account(f"sip:alice@{bs.address()}", register=False)
        bs.dial(uas.uri("bob"))
        established = bs.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"])
        assert established["type"] == "CALL_ESTABLISHED", established
        time.sleep(1.2)
        bs.hangup()
        bs.wait_event("CALL_CLOSED")
        result = uas.wait(timeout=5)
        recordings = bs.recordings()
    assert result.ok, result.describe()
    assert len(recordings) == 1
    heard = audio.read_wav(recordings[0])
    assert heard.seconds > 1.0
    assert audio.rms_dbfs(heard.samples) > -45, "the recording should hold SIPp's A-law speech"


def test_dtmf_both_ways_with_pjsua(tmp_path: Path, tone_wav: Path) -> None:
    with PjsuaAgent(tmp_path, name="pjsua") as ua, Baresip(tmp_path, audio_file=tone_wav) as bs:
        ua.add_account(f"sip:carol@{ua.address()}", auto_answer=200)
        bs.add_account(f"sip:dave@{bs.address()}", register=False)
        bs.dial(ua.uri("carol"))
        bs.wait_event("CALL_ESTABLISHED")
        call = ua.wait_incoming()
        ua.wait_call_state(call, "confirmed")
        ua.record(call, tmp_path / "from-baresip.wav")

        bs.send_dtmf("42")
        assert [ua.wait_event("dtmf_received", call=call)["digit"] for _ in range(2)] == ["4", "2"]
        ua.send_dtmf(call, "7", method="rfc2833")
        ua.send_dtmf(call, "9", method="info")
        assert {bs.wait_event("CALL_DTMF_START")["param"] for _ in range(2)} == {"7", "9"}

        time.sleep(0.8)
        heard = ua.stop_record(call)
        bs.hangup()
        ua.wait_call_state(call, "disconnected")
    wav = audio.read_wav(heard)
    assert audio.tone_ratio(wav.samples, wav.rate, TONE_HZ) > 0.5, "baresip's aufile source reached PJSIP"


def test_tls_and_srtp_with_pjsua(tmp_path: Path, certs: tls.TlsFiles) -> None:
    server_tls = {"cert_file": certs.cert_file, "key_file": certs.key_file}
    with (
        PjsuaAgent(tmp_path, name="pjsua", transports={"tls": 0}, tls=server_tls) as ua,
        Baresip(tmp_path, tls_combined_pem=certs.combined_file, extra_modules=["srtp.so"]) as bs,
    ):
        ua.add_account(
            f"sip:carol@{ua.address('tls')};transport=tls", transport="tls", auto_answer=200, srtp="mandatory"
        )
        bs.add_account(f"sip:dave@{bs.address('tls')};transport=tls", register=False, mediaenc="srtp-mand")
        bs.dial(ua.uri("carol", "tls"))
        bs.wait_event("CALL_ESTABLISHED")
        menc = bs.wait_event("CALL_MENC")
        call = ua.wait_incoming()
        ua.wait_media(call)
        time.sleep(0.5)
        stats = ua.call_stats(call)
        bs.hangup()
        ua.wait_call_state(call, "disconnected")
    assert "AES_CM_128_HMAC_SHA1_80" in menc["param"]
    assert stats["rx_packets"] > 10


def test_pjsua_calls_baresip_over_tls(tmp_path: Path, certs: tls.TlsFiles) -> None:
    with (
        PjsuaAgent(tmp_path, name="pjsua", transports={"tls": 0}) as ua,
        Baresip(tmp_path, tls_combined_pem=certs.combined_file) as bs,
    ):
        alice = ua.add_account(f"sip:alice@{ua.address('tls')};transport=tls", transport="tls")
        bs.add_account(f"sip:dave@{bs.address('tls')};transport=tls", register=False, answermode="auto")
        call = ua.make_call(alice, bs.uri("dave", "tls"))
        ua.wait_call_state(call, "confirmed")
        assert bs.wait_event("CALL_ESTABLISHED")["direction"] == "incoming"
        ua.hangup(call)
        bs.wait_event("CALL_CLOSED")


def test_hold_resume_and_transfer_towards_pjsua(tmp_path: Path) -> None:
    with PjsuaAgent(tmp_path, name="pjsua") as ua, Baresip(tmp_path) as bs:
        ua.add_account(f"sip:carol@{ua.address()}", auto_answer=200)
        ua.add_account(f"sip:erin@{ua.address()}", auto_answer=200)
        bs.add_account(f"sip:dave@{bs.address()}", register=False)
        bs.dial(ua.uri("carol"))
        bs.wait_event("CALL_ESTABLISHED")
        call = ua.wait_incoming()
        mark = ua.mark()
        bs.hold()
        ua.wait_media(call, "remote_hold", since=mark)
        bs.resume()
        ua.wait_media(call, "active", since=mark)
        bs.transfer(ua.uri("erin"))  # REFER: carol (PJSIP) calls erin and leaves dave
        transferred = ua.wait_event("incoming_call", since=mark, where=lambda e: "erin" in e["local_uri"])
        ua.wait_call_state(transferred["call"], "confirmed")
        ua.wait_call_state(call, "disconnected")


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_message_and_options_with_pjsua(tmp_path: Path, certs: tls.TlsFiles, transport: str) -> None:
    server_tls = {"cert_file": certs.cert_file, "key_file": certs.key_file}
    with PjsuaAgent(tmp_path, name="pjsua", transports={transport: 0}, tls=server_tls) as ua:
        carol = ua.add_account(ua.uri("carol", transport), transport=transport)
        erin = ua.add_account(ua.uri("erin", transport), transport=transport)
        # Parameterless Request-URIs; the outbound route (PJSIP itself) carries the transport.
        to_carol, to_erin = f"sip:carol@{ua.address(transport)}", f"sip:erin@{ua.address(transport)}"
        with Baresip(tmp_path, contacts=[to_carol, to_erin], tls_combined_pem=certs.combined_file) as bs:
            bs.add_account(bs.uri("dave", transport), register=False, outbound=ua.uri(None, transport))
            text = f'to erin over {transport}: "ünï" ✓'
            mark = ua.mark()
            sent = bs.send_message(to_erin, text)  # the second contact: select_contact moves on
            got = ua.wait_event("message_received", since=mark)
            assert (got["account"], got["body"]) == (erin, text)
            assert (sent.request.body, sent.request.transport, sent.response.status) == (text, transport.upper(), 200)
            assert bs.send_message(to_carol, "back to carol").response.status == 200  # and back
            assert ua.wait_event("message_received", since=mark)["account"] == carol

            since, mark = bs.sip_mark(), ua.mark()
            ua.send_message(carol, bs.uri("dave", transport), f"to dave over {transport}")
            received = bs.wait_message(since=since)
            assert received.request.body == f"to dave over {transport}"
            assert (received.request.direction, received.response.direction) == ("received", "sent")
            assert received.response.status == 200
            assert ua.wait_event("message_status", since=mark)["code"] == 200

            ping = bs.send_options(f"sip:ping@{ua.address(transport)}")
            assert ping.response.status == 200 and "MESSAGE" in (ping.response.header("Allow") or "")
            assert ping.request.transport == transport.upper()


def test_rejects_a_message_that_is_not_text(tmp_path: Path) -> None:
    """baresip 1.0 takes text/plain only; wait_message reports the 415 it answers."""
    with PjsuaAgent(tmp_path, name="pjsua") as ua, Baresip(tmp_path) as bs:
        carol = ua.add_account(ua.uri("carol"))
        bs.add_account(bs.uri("dave"), register=False)
        ua.send_message(carol, bs.uri("dave"), '{"hello": 1}', content_type="application/json")
        received = bs.wait_message()
        assert ua.wait_event("message_status")["code"] == 415
    assert received.request.header("Content-Type") == "application/json"
    assert received.response.status == 415 and received.response.header("Accept") == "text/plain"


def test_message_ignores_the_transport_parameter(tmp_path: Path) -> None:
    """Pins a quirk: baresip 1.0's message_send() parses the contact as a bare address, so the
    URI's ;transport= is lost and the MESSAGE goes over UDP (tests route via an outbound proxy)."""
    with PjsuaAgent(tmp_path, name="pjsua", transports={"udp": 0, "tcp": 0}) as ua:
        carol = ua.add_account(ua.uri("carol"))
        to_carol = f"sip:carol@{ua.address('udp')};transport=tcp"  # TCP to the UDP port: nobody there
        with Baresip(tmp_path, contacts=[to_carol]) as bs:
            bs.add_account(bs.uri("dave"), register=False)
            sent = bs.send_message(to_carol, "which transport?")
            got = ua.wait_event("message_received")
    assert got["account"] == carol
    assert sent.request.transport == "UDP" and sent.request.start_line == f"MESSAGE sip:carol@{ua.address()} SIP/2.0"
