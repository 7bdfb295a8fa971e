"""A leg that is one SIP dialog with one RTP stream: here, the callee side of an inbound INVITE.

The leg speaks SIP to its peer and call-control to the call (answer, hang up, ended); apps never
see SIP. Media: an `RtpEndpoint` with the negotiated codec; what the leg plays goes through a
`Player` that the shared 20 ms clock ticks; RFC 4733 digits it receives arrive on `digits`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from voxswitch.engine.reinvite import retransmit_2xx
from voxswitch.media.clock import MediaClock
from voxswitch.media.codecs import G711Codec
from voxswitch.media.dtmf import DigitEnd, DtmfReceiver
from voxswitch.media.endpoint import RtpEndpoint
from voxswitch.media.ports import RtpPortAllocator
from voxswitch.media.recorder import WavRecorder
from voxswitch.sip import sdp
from voxswitch.sip.dialog import Dialog, DialogSet
from voxswitch.sip.message import Request, build_response
from voxswitch.sip.stack import RequestFailed, SipStack
from voxswitch.sip.transaction import ServerTransaction, Target
from voxswitch.sip.uri import SipUri

log = logging.getLogger(__name__)

OUR_CODECS = (sdp.Codec("PCMU", 8000), sdp.Codec("PCMA", 8000))
SAMPLES_PER_FRAME = 160  # 20 ms at 8 kHz


class Player:
    """Frames queued for one leg, sent one per clock tick; `done` resolves when the source runs dry."""

    def __init__(self, leg: SipLeg, frames: AsyncIterator[np.ndarray], max_buffer: int = 50) -> None:
        self.leg = leg
        self.buffer: collections.deque[np.ndarray] = collections.deque()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._space = asyncio.Event()
        self._space.set()
        self._exhausted = False
        self._max = max_buffer
        self._feeder = asyncio.get_running_loop().create_task(self._feed(frames))
        self._handle = leg.clock.add(self.tick)

    async def _feed(self, frames: AsyncIterator[np.ndarray]) -> None:
        try:
            async for frame in frames:
                self.buffer.append(frame)
                if len(self.buffer) >= self._max:
                    self._space.clear()
                    await self._space.wait()
        finally:
            self._exhausted = True
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:  # stop the source now (a TTS engine frees its worker), not at GC
                with contextlib.suppress(Exception):
                    await aclose()

    def tick(self, now: float) -> None:
        if self.buffer:
            frame = self.buffer.popleft()
            self.leg.endpoint.send_payload(self.leg.codec.encode(frame), SAMPLES_PER_FRAME)
            if len(self.buffer) < self._max // 2:
                self._space.set()
        elif self._exhausted:
            self.stop()

    def stop(self) -> None:
        self.leg.clock.remove(self._handle)
        self._feeder.cancel()
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class MediaPlan:
    negotiated: sdp.Negotiated
    answer: sdp.SessionDescription


class SipLeg:
    """The callee leg of an inbound INVITE."""

    def __init__(
        self,
        stack: SipStack,
        dialogs: DialogSet,
        clock: MediaClock,
        ports: RtpPortAllocator,
        txn: ServerTransaction,
        invite: Request,
        source: Target,
        advertised_host: str,
    ) -> None:
        self.stack, self.dialogs, self.clock, self.ports = stack, dialogs, clock, ports
        self.txn, self.invite, self.source = txn, invite, source
        self.advertised_host = advertised_host
        self.dialog: Dialog | None = None
        self.endpoint = RtpEndpoint(payload_type=0)
        self.codec = G711Codec("PCMU")
        self.plan: MediaPlan | None = None
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.acked = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_cause: str | None = None
        self._dtmf = DtmfReceiver()
        self._to_tag = f"vx{id(self):x}"
        self._players: set[Player] = set()
        self.local_sdp: sdp.SessionDescription | None = None
        self.sdp_codec = OUR_CODECS[0]
        self.awaiting_ack = self.acked
        self.partner: object | None = None  # the leg this one is bridged to, if any
        self.recorder: WavRecorder | None = None  # what the peer says goes here while set
        self._heard: collections.deque[np.ndarray] = collections.deque(maxlen=10)
        self._pending = np.zeros(0, dtype=np.int16)
        self._listening = 0
        self._recording_tick: int | None = None

    # media ------------------------------------------------------------------------------------

    async def prepare_media(self) -> None:
        """Open an RTP port and answer the INVITE's offer (RFC 3264); raises NegotiationError."""
        if not self.invite.body:
            raise sdp.NegotiationError("no SDP offer in the INVITE")  # late offer: not supported yet
        offer = sdp.parse(self.invite.body)
        rtp_sock, rtcp_sock = self.ports.allocate()
        await self.endpoint.open(rtp_sock, rtcp_sock)
        local = sdp.LocalMedia(self.advertised_host, self.endpoint.local_port, OUR_CODECS, dtmf=True)
        answer, negotiated = sdp.answer(offer, local, session_id=abs(hash(self._to_tag)) % 10**9)
        if negotiated is None:
            raise sdp.NegotiationError("no audio stream in the offer")
        self.plan = MediaPlan(negotiated, answer)
        self.local_sdp = answer
        self.sdp_codec = sdp.Codec(negotiated.codec.name, negotiated.codec.clock_rate)
        self.codec = G711Codec(negotiated.codec.name.upper())
        ep = self.endpoint
        ep.payload_type = negotiated.codec.payload_type or 0
        ep.sender.payload_type = ep.payload_type
        ep.remote = (negotiated.remote_address, negotiated.remote_port)
        ep.consumer = self._on_rtp

    def _on_rtp(self, endpoint: RtpEndpoint, data: bytes, payload_type: int) -> None:
        plan = self.plan
        if plan is None:
            return
        header = 12 + 4 * (data[0] & 0x0F)
        if payload_type == plan.negotiated.local_payload_type:
            if self._listening:
                self._heard.append(self.codec.decode(data[header:]))
            return
        if payload_type != plan.negotiated.local_telephone_event_pt:
            return
        ts = int.from_bytes(data[4:8], "big")
        for event in self._dtmf.feed(ts, data[header:], asyncio.get_running_loop().time()):
            if isinstance(event, DigitEnd):
                self.digits.put_nowait(event.digit)

    # what the peer says, as 20 ms frames on the media clock (recording, conference) --------------

    def listen(self) -> None:
        """Start keeping what the peer says for `take_frame`."""
        self._listening += 1
        self._heard.clear()

    def unlisten(self) -> None:
        self._listening = max(0, self._listening - 1)

    def take_frame(self) -> np.ndarray:
        """The next 20 ms of what the peer said; silence for a gap. Packets need not be 20 ms."""
        while self._heard and len(self._pending) < SAMPLES_PER_FRAME:
            self._pending = np.concatenate((self._pending, self._heard.popleft()))
        frame, self._pending = self._pending[:SAMPLES_PER_FRAME], self._pending[SAMPLES_PER_FRAME:]
        if len(frame) < SAMPLES_PER_FRAME:
            frame = np.pad(frame, (0, SAMPLES_PER_FRAME - len(frame)))
        return frame

    def start_recording(self, recorder: WavRecorder) -> None:
        """Record what the peer says, a frame per clock tick, so the file's length is the time that passed."""
        self.recorder = recorder
        self.listen()
        self._recording_tick = self.clock.add(lambda now: recorder.write(self.take_frame()))

    def stop_recording(self) -> None:
        if self._recording_tick is not None:
            self.clock.remove(self._recording_tick)
            self._recording_tick = None
            self.unlisten()
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def play(self, frames: AsyncIterator[np.ndarray]) -> Player:
        player = Player(self, frames)
        self._players.add(player)
        player.done.add_done_callback(lambda _: self._players.discard(player))
        return player

    # signalling -------------------------------------------------------------------------------

    @property
    def peer_target(self) -> Target:
        return self.source

    def contact(self) -> str:
        uri = self.invite.uri
        user = uri.user if isinstance(uri, SipUri) and uri.user else "voxswitch"
        host, port = self.stack.transport.listen.get(self.source.transport.upper(), (self.advertised_host, 5060))
        host = self.advertised_host if host in ("0.0.0.0", "::") else host
        transport = "" if self.source.transport.upper() == "UDP" else f";transport={self.source.transport.lower()}"
        return f"<sip:{user}@{host}:{port}{transport}>"

    def ring(self) -> None:
        if not self.txn.terminated:
            self.stack.respond(self.txn, build_response(self.invite, 180, to_tag=self._to_tag))

    async def answer(self) -> None:
        """200 OK with our SDP; the 2xx is retransmitted until the ACK arrives (§13.3.1.4)."""
        assert self.plan is not None
        body = self.plan.answer.to_bytes()
        response = build_response(
            self.invite,
            200,
            to_tag=self._to_tag,
            headers=[("Contact", self.contact()), ("Content-Type", "application/sdp")],
            body=body,
        )
        response.add("Content-Length", str(len(body)))
        self.stack.respond(self.txn, response)
        self.dialog = self.dialogs.respond(self.invite, response)
        if self.dialog is not None:
            self.dialog.user_data = self
        await retransmit_2xx(self.stack, response, self.source, self.acked)
        if not self.acked.is_set():  # §13.3.1.4: no ACK in 64*T1 -> the dialog is over
            await self.hangup("no ACK for 200 OK")

    def reject(self, status: int, reason: str | None = None) -> None:
        if not self.txn.terminated and (self.txn.last_response is None or self.txn.last_response.status < 200):
            self.stack.respond(self.txn, build_response(self.invite, status, reason, to_tag=self._to_tag))
        self._finish(reason or str(status))

    async def hangup(self, cause: str = "normal clearing") -> None:
        if self.ended.is_set():
            return
        dialog = self.dialog
        if dialog is not None and not dialog.terminated:
            bye = dialog.bye(
                self.stack.via(self.source.transport), headers=[("Reason", f'SIP;cause=200;text="{cause}"')]
            )
            try:
                await self.stack.request(bye, self.source)
            except RequestFailed:
                pass
        elif dialog is None:
            self.reject(480, "Temporarily Unavailable")
        self._finish(cause)

    # from the peer ----------------------------------------------------------------------------

    def on_ack(self) -> None:
        self.acked.set()
        self.awaiting_ack.set()

    def on_bye(self, txn: ServerTransaction, request: Request) -> None:
        self.stack.respond(txn, build_response(request, 200))
        self._finish("remote hangup")

    def on_cancel(self) -> None:
        self._finish("cancelled by caller")

    def _finish(self, cause: str) -> None:
        if self.ended.is_set():
            return
        self.end_cause = cause
        for player in list(self._players):
            player.stop()
        if self._recording_tick is not None:
            self.clock.remove(self._recording_tick)
            self._recording_tick = None
        self.endpoint.close()
        self.ports.release(self.endpoint.local_port)
        if self.dialog is not None:
            self.dialog.terminate()
            self.dialogs.discard(self.dialog)
        self.ended.set()
