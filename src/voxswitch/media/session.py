"""One leg's audio stream: an RTP endpoint plus everything that turns its packets into the engine's
frames and back. Nothing here knows SIP; a leg hands over the negotiated `StreamTerms`.

Theory of operation. Inside the engine, audio is 20 ms frames of 8 kHz int16 (`frames.NARROWBAND`):
apps, recorders, the conference mixer and the transcoding bridge all speak it. A session converts at
its edge: decode (and resample when the codec's rate differs, G.722 and Opus) what the peer sends,
resample and encode what we send. Received audio is decoded only when someone wants it: a listener
(recording, conference, speech recognition) reads it through an adaptive jitter buffer one frame per
clock tick (`take_frame`); a transcoding bridge gets each packet's audio as it arrives (`forward`);
in-band DTMF detection runs while no telephone-event was agreed. When the session is relayed
untouched to a partner (same codec both sides) none of this runs: the endpoint forwards packets.

DTMF arrives as RFC 4733 events (`DtmfReceiver`) or as tones, and leaves as RFC 4733 events sent on
the clock. RTCP reports (RFC 3550 §6.4) go out from one `RtcpScheduler` task for every session;
what the peer reports back (loss, jitter, round trip) gives the leg's MOS estimate (`quality`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from voxswitch.media import rtcp
from voxswitch.media.clock import MediaClock
from voxswitch.media.codecs import Codec, CodecRegistry, default_registry
from voxswitch.media.dtmf import DigitEnd, DtmfDetector, DtmfReceiver, DtmfSender
from voxswitch.media.endpoint import RtpEndpoint
from voxswitch.media.frames import NARROWBAND, Frame
from voxswitch.media.jitter import JitterBuffer, JitterConfig
from voxswitch.media.player import Player
from voxswitch.media.ports import RtpPortAllocator
from voxswitch.media.quality import estimate_mos
from voxswitch.media.resample import FrameResampler

log = logging.getLogger(__name__)

ENGINE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at the engine rate
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_SILENCE.flags.writeable = False


@dataclass(frozen=True, slots=True)
class StreamTerms:
    """What one offer/answer agreed for an audio stream, in media terms."""

    codec: str  # encoding name, e.g. "PCMU"
    clock_rate: int
    send_pt: int  # the number the peer asked us to send with
    recv_pt: int  # the number we asked the peer to send with
    remote: tuple[str, int]
    remote_rtcp: tuple[str, int] | None = None
    dtmf_send_pt: int | None = None
    dtmf_recv_pt: int | None = None
    sends: bool = True  # we may send (False while the peer holds us: sendonly/inactive from it)
    receives: bool = True

    def same_format(self, other: StreamTerms) -> bool:
        return (self.codec.upper(), self.clock_rate) == (other.codec.upper(), other.clock_rate)


@dataclass(frozen=True, slots=True)
class MediaStats:
    packets_in: int
    packets_out: int
    lost: int
    loss_fraction: float  # of what the peer sent us, from sequence numbers (RFC 3550 A.3)
    jitter_ms: float  # interarrival jitter of what we receive (A.8)
    rtt_ms: float | None  # from the peer's RTCP report blocks, when it sends them
    remote_loss_fraction: float | None  # what the peer says it lost of ours
    mos: float | None  # E-model estimate; None before any audio arrived


Forward = Callable[[Frame], None]
ForwardEvent = Callable[[int, bytes, bool], None]  # (RTP timestamp, telephone-event payload, marker)


class _Reframer:
    """Cuts decoded packets of any duration into 20 ms frames keyed by RTP timestamp."""

    def __init__(self, ts_per_sample: float) -> None:
        self.ratio = ts_per_sample
        self.pending = np.zeros(0, dtype=np.int16)
        self.start_ts = 0
        self.next_ts: int | None = None

    def cut(self, timestamp: int, pcm: Frame) -> list[tuple[int, Frame]]:
        if self.next_ts != timestamp or not len(self.pending):
            if self.next_ts != timestamp:
                self.pending = np.zeros(0, dtype=np.int16)
            if not len(self.pending):
                self.start_ts = timestamp
        if len(pcm) == FRAME_SAMPLES and not len(self.pending):  # the common case: one 20 ms packet
            self.next_ts = (timestamp + int(FRAME_SAMPLES * self.ratio)) & 0xFFFFFFFF
            return [(timestamp, pcm)]
        self.pending = np.concatenate((self.pending, pcm))
        self.next_ts = (timestamp + int(len(pcm) * self.ratio)) & 0xFFFFFFFF
        out = []
        while len(self.pending) >= FRAME_SAMPLES:
            out.append((self.start_ts, self.pending[:FRAME_SAMPLES]))
            self.pending = self.pending[FRAME_SAMPLES:]
            self.start_ts = (self.start_ts + int(FRAME_SAMPLES * self.ratio)) & 0xFFFFFFFF
        return out


class MediaSession:
    def __init__(self, media: MediaResources) -> None:
        self.media = media
        self.clock = media.clock
        self.ports = media.ports
        self.codecs = media.codecs
        self.endpoint = RtpEndpoint(payload_type=0)
        self.endpoint.consumer = self._on_rtp
        self.endpoint.rtcp_consumer = self._on_rtcp
        self.terms: StreamTerms | None = None
        self.codec: Codec | None = None
        self.on_digit: Callable[[str], None] | None = None
        self.forward: Forward | None = None  # transcoding bridge: each packet's audio, engine rate
        self.forward_event: ForwardEvent | None = None
        self.closed = False
        self._decode_to_engine: FrameResampler | None = None
        self._encode_from_engine: FrameResampler | None = None
        self._dtmf_in = DtmfReceiver()
        self._dtmf_out: DtmfSender | None = None
        self._inband: DtmfDetector | None = None
        self._inband_pending = np.zeros(0, dtype=np.int16)
        self._listeners = 0
        self._jitter: JitterBuffer | None = None
        self._reframer: _Reframer | None = None
        self._taken: tuple[float, Frame] | None = None
        self._sent: deque[Frame] | None = None  # what we sent, while a stereo recorder wants it
        self._players: set[Player] = set()
        self._peer_report: rtcp.ReportBlock | None = None
        self._rtt: float | None = None
        self._rtcp_due = 0.0

    # lifecycle ----------------------------------------------------------------------------------

    @property
    def local_port(self) -> int:
        return self.endpoint.local_port

    async def open(self) -> int:
        """Take an RTP/RTCP port pair from the range; the local RTP port."""
        rtp_sock, rtcp_sock = self.ports.allocate()
        try:
            await self.endpoint.open(rtp_sock, rtcp_sock)
        except BaseException:
            rtp_sock.close()
            rtcp_sock.close()
            self.ports.release(rtp_sock.getsockname()[1])
            raise
        self.media.rtcp.add(self)
        return self.local_port

    def configure(self, terms: StreamTerms) -> None:
        """Apply (or re-apply, after a re-INVITE) the negotiated terms."""
        previous = self.terms
        self.terms = terms
        ep = self.endpoint
        if previous is None or not previous.same_format(terms) or self.codec is None:
            self.codec = self.codecs.create(terms.codec, terms.clock_rate)
            rate = self.codec.sample_rate
            self._decode_to_engine = FrameResampler(rate, ENGINE_RATE) if rate != ENGINE_RATE else None
            self._encode_from_engine = FrameResampler(ENGINE_RATE, rate) if rate != ENGINE_RATE else None
            ep.clock_rate = terms.clock_rate
            if self._jitter is not None:
                self._start_jitter()
        ep.payload_type = ep.sender.payload_type = terms.send_pt
        if previous is None or previous.remote != terms.remote:
            ep.remote = terms.remote
            ep.latch.reset()
        ep.remote_rtcp = terms.remote_rtcp
        ep.sending = terms.sends
        if terms.dtmf_send_pt is not None:
            self._dtmf_out = DtmfSender(ep.sender, terms.dtmf_send_pt, interval=terms.clock_rate // 50)
        else:
            self._dtmf_out = None
        self._inband = DtmfDetector() if terms.dtmf_recv_pt is None else None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for player in list(self._players):
            player.stop()
        self.media.rtcp.discard(self)
        if self.endpoint.transport is not None:
            self._send_rtcp(time.time(), bye=True)
        self.endpoint.close()
        if self.endpoint.local_port:
            self.ports.release(self.endpoint.local_port)

    # sending ------------------------------------------------------------------------------------

    def send_frame(self, frame: Frame) -> None:
        """Encode and send one 20 ms engine frame in this stream."""
        codec = self.codec
        if codec is None or self.closed:
            return
        if self._sent is not None:
            self._sent.append(frame)
        pcm = self._encode_from_engine.process(frame) if self._encode_from_engine is not None else frame
        clock = self.terms.clock_rate if self.terms is not None else ENGINE_RATE
        self.endpoint.send_payload(codec.encode(pcm), len(frame) * clock // ENGINE_RATE)

    def play(self, frames: AsyncIterator[Frame]) -> Player:
        """Play engine frames on the media clock until the source ends; `done` says when."""
        player = Player(self.clock, self.send_frame, frames)
        self._players.add(player)
        player.done.add_done_callback(lambda _: self._players.discard(player))
        return player

    def stop_playing(self) -> None:
        for player in list(self._players):
            player.stop()

    async def send_digits(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """RFC 4733 events, one packet per 20 ms as §2.5.1.2 suggests, on the media clock."""
        if self._dtmf_out is None or self.terms is None:
            raise RuntimeError("no telephone-event was agreed with this peer")
        for digit in digits:
            await self._send_on_ticks(self._dtmf_out.packets(digit, duration_ms * self.terms.clock_rate // 1000))
            await asyncio.sleep(gap_ms / 1000)

    async def _send_on_ticks(self, packets: list[bytes]) -> None:
        queue = deque(packets)
        done = asyncio.get_running_loop().create_future()

        def tick(now: float) -> None:
            if queue:
                sent = queue.popleft()
                self.endpoint.send_raw(sent)
                while queue and queue[0][12:] == sent[12:]:  # the end packet's repeats (§2.5.1.4)
                    self.endpoint.send_raw(queue.popleft())
            if not queue:
                self.clock.remove(handle)
                if not done.done():
                    done.set_result(None)

        handle = self.clock.add(tick)
        await done

    def relay_event(self, timestamp: int, payload: bytes, marker: bool) -> None:
        """Send a telephone-event packet another leg received, in our stream's numbering."""
        if self._dtmf_out is None or self.terms is None:
            return
        pt = self.terms.dtmf_send_pt
        assert pt is not None
        self.endpoint.send_raw(self.endpoint.sender.event(payload, payload_type=pt, timestamp=timestamp, marker=marker))

    # receiving ----------------------------------------------------------------------------------

    def _on_rtp(self, endpoint: RtpEndpoint, data: bytes, payload_type: int) -> None:
        terms = self.terms
        if terms is None:
            return
        offset = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= offset + 4:  # header extension (RFC 3550 §5.3.1)
            offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
        end = len(data) - (data[-1] if data[0] & 0x20 else 0)
        payload = data[offset:end]
        timestamp = int.from_bytes(data[4:8], "big")
        if payload_type == terms.recv_pt:
            if self.forward is None and not self._listeners and self._inband is None:
                return
            assert self.codec is not None
            try:
                pcm = self.codec.decode(payload)
            except Exception:
                return  # a corrupt packet: the jitter buffer conceals it
            if self._decode_to_engine is not None:
                pcm = self._decode_to_engine.process(pcm)
            if self.forward is not None:
                self.forward(pcm)
            if self._listeners and self._jitter is not None and self._reframer is not None:
                now = asyncio.get_running_loop().time()
                seq = int.from_bytes(data[2:4], "big")
                for ts, frame in self._reframer.cut(timestamp, pcm):
                    self._jitter.push(seq, ts, frame, now, marker=bool(data[1] & 0x80))
            if self._inband is not None:
                self._detect_inband(pcm)
        elif payload_type == terms.dtmf_recv_pt:
            if self.forward_event is not None:
                self.forward_event(timestamp, bytes(payload), bool(data[1] & 0x80))
            try:
                events = self._dtmf_in.feed(timestamp, payload, asyncio.get_running_loop().time())
            except ValueError:
                return
            for event in events:
                if isinstance(event, DigitEnd) and self.on_digit is not None:
                    self.on_digit(event.digit)

    def _detect_inband(self, pcm: Frame) -> None:
        assert self._inband is not None
        pending = np.concatenate((self._inband_pending, pcm)) if len(self._inband_pending) else pcm
        while len(pending) >= FRAME_SAMPLES:
            digit = self._inband.feed(pending[:FRAME_SAMPLES])
            pending = pending[FRAME_SAMPLES:]
            if digit is not None and self.on_digit is not None:
                self.on_digit(digit)
        self._inband_pending = pending

    def listen(self) -> None:
        """Start keeping what the peer says for `take_frame` (recording, conference, STT)."""
        self._listeners += 1
        if self._jitter is None:
            self._start_jitter()
        self.endpoint.consume_while_relaying = True

    def _start_jitter(self) -> None:
        clock = self.terms.clock_rate if self.terms is not None else ENGINE_RATE
        self._jitter = JitterBuffer(NARROWBAND, JitterConfig(clock_rate=clock))
        self._reframer = _Reframer(clock / ENGINE_RATE)

    def unlisten(self) -> None:
        self._listeners = max(0, self._listeners - 1)
        if not self._listeners:
            self._jitter = self._reframer = None
            self._taken = None
            self.endpoint.consume_while_relaying = self.forward is not None and self.endpoint.relay_to is not None

    def take_frame(self, now: float) -> Frame:
        """What the peer said in the 20 ms of clock tick `now` (silence or concealment for a gap).
        Several readers on one tick get the same frame."""
        if self._taken is not None and self._taken[0] == now:
            return self._taken[1]
        frame = self._jitter.pop(now) if self._jitter is not None else _SILENCE
        self._taken = (now, frame)
        return frame

    def capture_sent(self, on: bool) -> None:
        """Keep what we send (apps speaking) so a stereo recorder can write the other channel."""
        self._sent = deque(maxlen=25) if on else None

    def take_sent(self) -> Frame:
        return self._sent.popleft() if self._sent else _SILENCE

    # RTCP and quality ---------------------------------------------------------------------------

    def _on_rtcp(self, data: bytes) -> None:
        try:
            packets = rtcp.parse_compound(data, require_report_first=False)
        except rtcp.RtcpError:
            return
        now_wall = time.time()
        loop_now = asyncio.get_running_loop().time()
        ours = self.endpoint.sender.ssrc
        for packet in packets:
            if isinstance(packet, rtcp.SenderReport):
                receiver = self.endpoint.receiver
                if receiver is not None and receiver.ssrc == packet.ssrc:
                    receiver.on_sender_report(packet.ntp_timestamp, loop_now)
            if isinstance(packet, rtcp.SenderReport | rtcp.ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == ours:
                        self._peer_report = block
                        rtt = rtcp.round_trip_time(rtcp.ntp_short(rtcp.ntp_timestamp(now_wall)), block.lsr, block.dlsr)
                        if rtt is not None:
                            self._rtt = rtt

    def _send_rtcp(self, wall: float, *, bye: bool = False) -> None:
        ep = self.endpoint
        if ep.rtcp_transport is None or ep.remote is None:
            return
        loop_now = asyncio.get_running_loop().time()
        blocks = (rtcp.report_block(ep.receiver, loop_now),) if ep.receiver is not None else ()
        packet: rtcp.SenderReport | rtcp.ReceiverReport
        if ep.sender.packets_sent:
            packet = rtcp.sender_report(ep.sender, wall, ep.sender.timestamp, blocks)
        else:
            packet = rtcp.ReceiverReport(ep.sender.ssrc, blocks)
        parts: list[rtcp.RtcpPacket] = [packet, rtcp.SourceDescription.cname(ep.sender.ssrc, "voxswitch")]
        if bye:
            parts.append(rtcp.Bye((ep.sender.ssrc,)))
        ep.send_rtcp(rtcp.build_compound(parts))  # to a=rtcp or RTP + 1; SRTCP on an SRTP leg

    def stats(self) -> MediaStats:
        ep = self.endpoint
        receiver = ep.receiver
        lost = receiver.lost if receiver is not None else 0
        expected = receiver.expected if receiver is not None else 0
        loss = max(0.0, lost / expected) if expected > 0 else 0.0
        clock = ep.clock_rate or ENGINE_RATE
        jitter_ms = (receiver.jitter / clock * 1000) if receiver is not None else 0.0
        remote_loss = self._peer_report.fraction_lost / 256 if self._peer_report is not None else None
        rtt_ms = self._rtt * 1000 if self._rtt is not None else None
        mos = None
        if ep.packets_in:
            worst_loss = max(loss, remote_loss or 0.0)
            mos = round(estimate_mos(worst_loss, jitter_ms, rtt_ms if rtt_ms is not None else 0.0), 2)
        return MediaStats(ep.packets_in, ep.packets_out, max(0, lost), loss, jitter_ms, rtt_ms, remote_loss, mos)


class RtcpScheduler:
    """One task sends every session's RTCP reports, each about every 5 s (RFC 3550 §6.2), jittered."""

    def __init__(self) -> None:
        self.sessions: set[MediaSession] = set()
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    def add(self, session: MediaSession) -> None:
        session._rtcp_due = asyncio.get_running_loop().time() + rtcp.report_interval(self._rng, initial=True)
        self.sessions.add(session)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rtcp")

    def discard(self, session: MediaSession) -> None:
        self.sessions.discard(session)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.sessions:
            await asyncio.sleep(0.5)
            now, wall = loop.time(), time.time()
            for session in list(self.sessions):
                if session._rtcp_due <= now:
                    session._rtcp_due = now + rtcp.report_interval(self._rng)
                    session._send_rtcp(wall)

    async def stop(self) -> None:
        self.sessions.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class MediaResources:
    """What every session of one engine shares: the clock, the port range, codecs, RTCP timing."""

    clock: MediaClock
    ports: RtpPortAllocator
    codecs: CodecRegistry = field(default_factory=default_registry)
    rtcp: RtcpScheduler = field(default_factory=RtcpScheduler)

    async def stop(self) -> None:
        await self.rtcp.stop()
        await self.clock.stop()
