"""SRTP with SDES keys against PJSIP (pjsua2) and baresip, at the media level.

No call engine here: a small SIP user agent built in the test from Voxswitch's own sip/ pieces
(SipStack, Dialog, sdp) places or takes one call, and the media runs through an `RtpEndpoint` with
the `SrtpContext` that `voxswitch.media.srtp` builds from the offer/answer. The peers run with
SRTP mandatory (RTP/SAVP only), so a call in which the peer's tone reaches us decoded and ours is
heard in its recording proves both keys: we unprotect what the peer protected with the key its SDP
gave us, and it unprotects what we protected with the key ours gave it. The tones differ per
direction (the peer plays 440 Hz, we send 1000 Hz) so neither check can pass on an echo. PJSIP
covers the AES_CM suites both as answerer and as offerer (and its SRTCP), baresip the AEAD ones
too (and our SRTCP).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from array import array
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.peers import audio
from tests.peers.baresip import Baresip
from tests.peers.pjsua import PjsuaAgent
from tests.peers.ports import free_rtp_range, free_sip_port
from voxswitch.media.codecs import ulaw_decode, ulaw_encode
from voxswitch.media.endpoint import RtpEndpoint
from voxswitch.media.ports import RtpPortAllocator
from voxswitch.media.rtcp import build_compound, report_block, sender_report
from voxswitch.media.rtp import parse_rtp
from voxswitch.media.srtp import SUITES, SrtpStats, context_for
from voxswitch.media.srtp_policy import offer_crypto, plan_answer
from voxswitch.sip import sdp
from voxswitch.sip.dialog import Dialog
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.stack import SipStack
from voxswitch.sip.transaction import ServerTransaction, Target

pytestmark = pytest.mark.interop

THEIR_TONE_HZ, OUR_TONE_HZ = 440.0, 1000.0
HOST = "127.0.0.1"


class Ua:
    """The least SIP that places or takes one call: INVITE/200/ACK, BYE either way."""

    def __init__(self) -> None:
        self.stack = SipStack(self, user_agent="voxswitch-srtp-test")
        self.invites: asyncio.Queue[tuple[ServerTransaction, Request]] = asyncio.Queue()
        self.acked = asyncio.Event()
        self.bye = asyncio.Event()
        self.port = 0

    async def start(self) -> Ua:
        self.port = free_sip_port()
        await self.stack.start(udp=(HOST, self.port))
        return self

    def on_request(self, txn: ServerTransaction | None, request: Request, source: Target) -> None:
        if request.method == "ACK":
            self.acked.set()
        elif txn is None:
            return
        elif request.method == "INVITE":
            self.invites.put_nowait((txn, request))
        elif request.method == "BYE":
            self.stack.respond(txn, build_response(request, 200))
            self.bye.set()
        else:
            self.stack.respond(txn, build_response(request, 200))

    def on_stray_response(self, response: Response, source: Target) -> None:
        pass

    def invite(self, uri: str, body: bytes) -> Request:
        return Request(
            "INVITE",
            uri,
            [
                ("Via", self.stack.via("UDP")),
                ("Max-Forwards", "70"),
                ("From", f"<sip:voxswitch@{HOST}:{self.port}>;tag={secrets.token_hex(6)}"),
                ("To", f"<{uri}>"),
                ("Call-ID", f"{secrets.token_hex(12)}@{HOST}"),
                ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:voxswitch@{HOST}:{self.port}>"),
                ("Content-Type", "application/sdp"),
            ],
            body,
        )


async def leg_endpoint(ports: RtpPortAllocator) -> RtpEndpoint:
    ep = RtpEndpoint(payload_type=0)
    await ep.open(*ports.allocate())
    return ep


def tone_frames(freq: float, seconds: float) -> list[bytes]:
    n = int(8000 * seconds)
    t = np.arange(n) / 8000
    pcm = (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return [ulaw_encode(pcm[i : i + 160]) for i in range(0, n - 159, 160)]


async def send_and_listen(ep: RtpEndpoint, seconds: float) -> list[bytes]:
    """Send our tone for ``seconds`` (paced at 20 ms) and keep the payloads the peer sends us."""
    heard: list[bytes] = []
    ep.consumer = lambda _ep, data, _pt: heard.append(parse_rtp(data).payload)
    for frame in tone_frames(OUR_TONE_HZ, seconds):
        ep.send_payload(frame, 160)
        await asyncio.sleep(0.02)
    return heard


def snapshot(ep: RtpEndpoint) -> SrtpStats:
    """The context's counters while the call is up (taken before the BYE)."""
    assert ep.srtp is not None
    return replace(ep.srtp.stats)


def check_both_ways(ep: RtpEndpoint, stats: SrtpStats, heard: list[bytes], recording: Path, seconds: float) -> None:
    """We decoded the peer's tone from its SRTP; the peer's recording of our SRTP is our tone."""
    assert stats.auth_failures == 0 and stats.replays == 0 and stats.errors == 0, stats
    assert stats.unprotected >= 25 * seconds, stats  # the peer's packets, each authenticated
    pcm = np.concatenate([ulaw_decode(p) for p in heard])
    ours_heard = array("h", pcm.astype(np.int16).tobytes())
    assert audio.tone_ratio(ours_heard, 8000, THEIR_TONE_HZ) > 0.5, "the peer's SRTP did not decode to its tone"
    theirs = audio.read_wav(recording)
    theirs_loud = audio.trim_silence(theirs.samples)
    assert len(theirs_loud) > theirs.rate * seconds / 2, "the peer heard nothing of our SRTP"
    assert audio.tone_ratio(theirs_loud, theirs.rate, OUR_TONE_HZ) > 0.5, "the peer did not hear our tone"
    assert audio.tone_ratio(theirs_loud, theirs.rate, THEIR_TONE_HZ) < 0.05  # not its own tone back


async def exchange_media(ep: RtpEndpoint, agent: PjsuaAgent, call: str, tmp_path: Path, seconds: float) -> None:
    """PJSIP plays its tone to us and records what we send it, while we send ours for ``seconds``."""
    their_tone = audio.write_tone(tmp_path / "their-tone.wav", THEIR_TONE_HZ, seconds=seconds + 2)
    await asyncio.to_thread(agent.wait_media, call)
    agent.play(call, their_tone)
    agent.record(call, tmp_path / "pjsip-heard.wav")
    heard = await send_and_listen(ep, seconds)
    recording = await asyncio.to_thread(agent.stop_record, call)
    check_both_ways(ep, snapshot(ep), heard, recording, seconds)


def crypto_in_log(agent: PjsuaAgent) -> list[str]:
    agent.diagnostics()  # flushes the PJSIP log
    return re.findall(r"a=crypto:\d+ (\S+)", agent.log_file.read_text(errors="replace"))


# pjsua2-python 2.15.1's libsrtp has no AES-GCM: it answers an AEAD-only offer 406 and logs why.
PJSIP_SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"]
PJSIP_LACKS = [s for s in SUITES if s not in PJSIP_SUITES]


@pytest.mark.parametrize("suite", PJSIP_LACKS)
async def test_pjsip_refuses_the_aead_suites_it_lacks(tmp_path: Path, suite: str) -> None:
    """Not our limit but the peer's: kept so this file says which suites PJSIP proves."""
    ua = await Ua().start()
    with PjsuaAgent(tmp_path, name="bob") as bob:
        bob.add_account(f"sip:bob@{bob.address()}", auto_answer=200, srtp="mandatory")
        local = sdp.LocalMedia(HOST, 4000, (sdp.PCMU,), dtmf=False, crypto=offer_crypto("require", [suite]))
        invite = ua.invite(bob.uri("bob"), sdp.build_offer(local, session_id=1).to_bytes())
        response = await asyncio.wait_for(ua.stack.request(invite, Target("UDP", HOST, bob.ports["udp"])), 10)
        bob.diagnostics()
        assert response.status == 406
        assert "Unsupported SRTP crypto-suite" in bob.log_file.read_text(errors="replace")
    await ua.stack.stop()


@pytest.mark.parametrize("suite", PJSIP_SUITES)
async def test_pjsip_answers_our_srtp_offer(tmp_path: Path, suite: str) -> None:
    """We offer one suite with our key; PJSIP answers with its key; audio both ways."""
    base = free_rtp_range(4)
    ports = RtpPortAllocator(base, base + 4, host=HOST)
    ua = await Ua().start()
    with PjsuaAgent(tmp_path, name="bob") as bob:
        bob.add_account(f"sip:bob@{bob.address()}", auto_answer=200, srtp="mandatory")
        ep = await leg_endpoint(ports)
        ours = offer_crypto("require", [suite])
        local = sdp.LocalMedia(HOST, ep.local_port, (sdp.PCMU,), dtmf=False, crypto=ours)
        offer = sdp.build_offer(local, session_id=1)
        assert offer.media[0].proto == "RTP/SAVP"
        invite = ua.invite(bob.uri("bob"), offer.to_bytes())
        target = Target("UDP", HOST, bob.ports["udp"])
        response = await asyncio.wait_for(ua.stack.request(invite, target), 10)
        assert response.status == 200, f"{response.status} {response.reason}"
        negotiated = sdp.process_answer(offer, sdp.parse(response.body))
        assert negotiated is not None and negotiated.remote_crypto is not None
        assert negotiated.remote_crypto.suite == suite and negotiated.local_crypto == ours[0]
        ep.srtp = context_for(negotiated)  # before the ACK: PJSIP may already be sending
        ep.remote = (negotiated.remote_address, negotiated.remote_port)
        ep.rtcp_remote = (negotiated.remote_address, negotiated.remote_rtcp_port)
        dialog = Dialog.uac(invite, response)
        ua.stack.send_stateless(dialog.ack(invite, ua.stack.via("UDP")), target)
        call = await asyncio.to_thread(bob.wait_incoming)
        await exchange_media(ep, bob, call, tmp_path, seconds=2.0)
        bye = await ua.stack.request(dialog.bye(ua.stack.via("UDP")), target)
        assert bye.status == 200
        await asyncio.to_thread(bob.wait_call_state, call, "disconnected")
        assert crypto_in_log(bob).count(suite) >= 2  # our offer and its answer, as PJSIP logged them
    ep.close()
    await ua.stack.stop()


async def test_pjsip_offers_srtp_and_we_answer_under_require(tmp_path: Path) -> None:
    """PJSIP offers its suites; plan_answer("require") picks one we honour; its SRTCP authenticates."""
    base = free_rtp_range(4)
    ports = RtpPortAllocator(base, base + 4, host=HOST)
    ua = await Ua().start()
    with PjsuaAgent(tmp_path, name="alice") as alice:
        account = alice.add_account(f"sip:alice@{alice.address()}", srtp="mandatory")
        call = alice.make_call(account, f"sip:voxswitch@{HOST}:{ua.port}")
        txn, invite = await asyncio.wait_for(ua.invites.get(), 10)
        offer = sdp.parse(invite.body)
        offered = [c.suite for c in offer.media[0].crypto]
        assert offer.media[0].proto == "RTP/SAVP" and offered, "PJSIP in mandatory mode offers RTP/SAVP"
        plan = plan_answer("require", offer)
        assert plan.refusal is None, plan.refusal
        ep = await leg_endpoint(ports)
        local = sdp.LocalMedia(
            HOST, ep.local_port, (sdp.PCMU,), dtmf=False, crypto=plan.crypto, require_crypto=plan.require_crypto
        )
        answer, negotiated = sdp.answer(offer, local, session_id=2)
        assert negotiated is not None and negotiated.remote_crypto is not None
        chosen = negotiated.remote_crypto.suite
        # the offerer's first line that we implement (RFC 4568 §7.1.2: the answerer picks one)
        assert chosen == next(s for s in offered if s in SUITES)
        ep.srtp = context_for(negotiated)  # before the 200: PJSIP sends as soon as it has our answer
        ep.remote = (negotiated.remote_address, negotiated.remote_port)
        ep.rtcp_remote = (negotiated.remote_address, negotiated.remote_rtcp_port)
        ok = build_response(
            invite,
            200,
            headers=[("Contact", f"<sip:voxswitch@{HOST}:{ua.port}>"), ("Content-Type", "application/sdp")],
            body=answer.to_bytes(),
        )
        ua.stack.respond(txn, ok)
        await asyncio.wait_for(ua.acked.wait(), 5)
        await asyncio.to_thread(alice.wait_call_state, call, "confirmed")
        await exchange_media(ep, alice, call, tmp_path, seconds=2.0)
        # SRTCP: PJSIP's reports reach us on the RTCP port and must authenticate under its key
        assert ep.srtp is not None
        deadline = asyncio.get_running_loop().time() + 10
        while ep.rtcp_in == 0 and asyncio.get_running_loop().time() < deadline:
            ep.send_payload(b"\xff" * 160, 160)
            await asyncio.sleep(0.02)
        assert ep.rtcp_in >= 1 and ep.srtp.stats.errors == 0 and ep.srtp.stats.auth_failures == 0
        alice.hangup(call)
        await asyncio.wait_for(ua.bye.wait(), 5)
    ep.close()
    await ua.stack.stop()


# baresip 1.0's srtp.so (libre 1.1 with OpenSSL) has the AEAD suites PJSIP's wheel lacks, and tells
# us (CALL_RTCP) when it accepted an RTCP report, which proves our SRTCP too.
@pytest.mark.parametrize("suite", list(SUITES))
async def test_baresip_answers_our_srtp_offer(tmp_path: Path, suite: str) -> None:
    base = free_rtp_range(4)
    ports = RtpPortAllocator(base, base + 4, host=HOST)
    ua = await Ua().start()
    tone = audio.write_tone(tmp_path / "their-tone.wav", THEIR_TONE_HZ, seconds=6)
    with Baresip(tmp_path, audio_file=tone, record=True, extra_modules=["srtp.so"]) as bob:
        aor = f"sip:bob@{bob.address()}"
        bob.add_account(aor, register=False, answermode="auto", mediaenc="srtp-mand")
        ep = await leg_endpoint(ports)
        ours = offer_crypto("require", [suite])
        offer = sdp.build_offer(sdp.LocalMedia(HOST, ep.local_port, (sdp.PCMU,), dtmf=False, crypto=ours), session_id=1)
        invite = ua.invite(aor, offer.to_bytes())
        target = Target("UDP", HOST, bob.sip_port)
        response = await asyncio.wait_for(ua.stack.request(invite, target), 10)
        assert response.status == 200, f"{response.status} {response.reason}"
        negotiated = sdp.process_answer(offer, sdp.parse(response.body))
        assert negotiated is not None and negotiated.remote_crypto is not None
        assert negotiated.remote_crypto.suite == suite
        ep.srtp = context_for(negotiated)
        ep.remote = (negotiated.remote_address, negotiated.remote_port)
        dialog = Dialog.uac(invite, response)
        ua.stack.send_stateless(dialog.ack(invite, ua.stack.via("UDP")), target)
        await asyncio.to_thread(bob.wait_event, "CALL_ESTABLISHED")
        # SRTCP to baresip: it reports each SR it accepts (CALL_RTCP); a plain one it must drop
        ep.rtcp_remote = (negotiated.remote_address, negotiated.remote_rtcp_port)
        heard = await send_and_listen(ep, 1.0)
        assert ep.receiver is not None and ep.rtcp_transport is not None
        report = (report_block(ep.receiver, asyncio.get_running_loop().time()),)
        sr = build_compound([sender_report(ep.sender, time.time(), ep.sender.timestamp, report)])
        ep.rtcp_transport.sendto(sr, ep.rtcp_remote)  # plain RTCP, around our context
        heard += await send_and_listen(ep, 0.5)
        ep.send_rtcp(sr)  # the same report as SRTCP
        heard += await send_and_listen(ep, 0.5)
        if suite == "AES_CM_128_HMAC_SHA1_32":
            # RFC 3711 §5.2: SRTCP's HMAC-SHA1 tag is never shorter than 80 bits, and libsrtp (so
            # PJSIP and we) send 80. libre 1.1 cuts it to the suite's 32 for SRTCP too, so it
            # refuses ours but takes the same packet with the tag cut to its first 4 bytes.
            assert bob.events("CALL_RTCP") == []
            assert ep.srtp is not None
            protected = ep.srtp.protect_rtcp(sr)
            assert protected is not None
            ep.rtcp_transport.sendto(protected[:-6], ep.rtcp_remote)
            heard += await send_and_listen(ep, 0.5)
        assert len(bob.events("CALL_RTCP")) == 1, "baresip took plain RTCP or refused our SRTCP"
        during_call = snapshot(ep)
        bye = await ua.stack.request(dialog.bye(ua.stack.via("UDP")), target)
        assert bye.status == 200
        await asyncio.to_thread(bob.wait_event, "CALL_CLOSED")
        await asyncio.sleep(0.2)
        recordings = bob.recordings()
    assert len(recordings) == 1
    check_both_ways(ep, during_call, heard, recordings[0], 2.0)
    # baresip 1.0 sends its closing RTCP BYE+SDES unprotected once the call ends; we refuse it
    assert ep.srtp is not None and ep.srtp.stats.auth_failures <= 1
    ep.close()
    await ua.stack.stop()
