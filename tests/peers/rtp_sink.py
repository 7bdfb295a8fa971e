"""A UDP socket that keeps every RTP packet sent to it, for checking what a far end would hear.

SIPp cannot record the RTP it receives, so a trunk scenario announces this sink's port in its SDP
answer and the test reads the streams back here: per SSRC, in arrival order, decoded with the
standard library's G.711 (independent of ours). One sink can take many calls at once: each call's
stream has its own SSRC.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import warnings
from array import array
from dataclasses import dataclass, field

with warnings.catch_warnings():  # the standard library's G.711, deprecated in 3.11 but independent of ours
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

from tests.peers import ports


@dataclass
class Stream:
    ssrc: int
    payload_type: int
    source: tuple[str, int]
    packets: list[tuple[float, int, bytes]] = field(default_factory=list)  # (arrival, seq, payload)

    def pcm(self) -> array[int]:
        """The stream as 8 kHz signed 16-bit samples, in sequence order (G.711 µ-law or A-law)."""
        ordered = sorted(self.packets, key=lambda p: p[1])
        raw = b"".join(p[2] for p in ordered)
        linear = audioop.ulaw2lin(raw, 2) if self.payload_type == 0 else audioop.alaw2lin(raw, 2)
        return array("h", linear)

    @property
    def seconds(self) -> float:
        return (self.packets[-1][0] - self.packets[0][0]) if len(self.packets) > 1 else 0.0


class RtpSink:
    def __init__(self, host: str = ports.LOOPBACK) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()[:2]
        self.streams: dict[int, Stream] = {}
        self.packets = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-sink", daemon=True)

    def __enter__(self) -> RtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 12 or data[0] >> 6 != 2:
                continue  # not RTP (RTCP goes to port + 1, which nobody listens on)
            pt = data[1] & 0x7F
            seq, _ts, ssrc = struct.unpack("!HII", data[2:12])
            if pt not in (0, 8):
                continue  # telephone-event and comfort noise are not speech
            cc = data[0] & 0x0F
            payload = data[12 + 4 * cc :]
            with self._lock:
                stream = self.streams.get(ssrc)
                if stream is None:
                    stream = self.streams[ssrc] = Stream(ssrc, pt, source)
                stream.packets.append((time.monotonic(), seq, payload))
                self.packets += 1

    def snapshot(self) -> list[Stream]:
        with self._lock:
            return [Stream(s.ssrc, s.payload_type, s.source, list(s.packets)) for s in self.streams.values()]


def voiced_seconds(samples: array[int], rate: int = 8000, threshold_dbfs: float = -45.0, frame_ms: int = 20) -> float:
    """How many seconds of `samples` are louder than `threshold_dbfs`, counted in 20 ms frames."""
    n = rate * frame_ms // 1000
    limit = (32768 * 10 ** (threshold_dbfs / 20)) ** 2
    voiced = 0
    for i in range(0, len(samples) - n + 1, n):
        frame = samples[i : i + n]
        if sum(x * x for x in frame) / n > limit:
            voiced += 1
    return voiced * frame_ms / 1000
