"""Loss and added jitter through an RTP relay, measured from a capture on the loopback interface.

The relay forwards packets untouched, so a packet is the same 12-byte RTP header (SSRC + sequence
number) on its way in and on its way out. A capture on `lo` sees both, stamped by one clock: a
packet that went in and never came out was lost by the relay, and `t_out - t_in` is the time it
spent inside (waiting in the socket buffer, then being handled). Nothing is added to the relay's
own core but the kernel's copy of the first 54 bytes of each packet it sends into the capture ring.

`Capture` runs tcpdump (on the load generators' core, with a large ring), `read_rtp` loads its file
into numpy arrays and `relay_report` matches the two sides of one direction. A capture that lost
packets itself is detected twice -- tcpdump's own "dropped by kernel" count, and gaps in the
sequence numbers of the packets *entering* the relay (SIPp's rtp_stream numbers its packets without
gaps) -- and is reported as such, never counted as relay loss.
"""

from __future__ import annotations

import re
import signal
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tests.peers import processes

#: Ethernet + IPv4 + UDP + RTP fixed header: all the capture needs of each packet.
SNAPLEN = 14 + 20 + 8 + 12
_PCAP_NS = 0xA1B23C4D
_PCAP_US = 0xA1B2C3D4


def alaw_from_pcap(pcap: Path, target: Path) -> Path:
    """The RTP payloads of a G.711 capture (SIPp's g711a.pcap), concatenated: the raw A-law file
    that SIPp's rtp_stream loops (it sends 160 bytes per 20 ms whatever the capture's ptime was)."""
    data = pcap.read_bytes()
    magic, _, _, _, _, _, link = struct.unpack_from("<IHHiIII", data)
    if magic not in (_PCAP_US, _PCAP_NS) or link != 1:
        raise ValueError(f"{pcap}: not a little-endian Ethernet pcap")
    out = bytearray()
    offset = 24
    while offset + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        packet = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        ihl = (packet[14] & 0x0F) * 4
        rtp = packet[14 + ihl + 8 :]
        if len(rtp) > 12 and rtp[0] >> 6 == 2:
            out += rtp[12 + 4 * (rtp[0] & 0x0F) :]
    target.write_bytes(bytes(out))
    return target


@dataclass
class CaptureStats:
    captured: int = -1
    received_by_filter: int = -1
    dropped_by_kernel: int = -1
    dropped_by_interface: int = 0

    @property
    def complete(self) -> bool:
        return self.captured >= 0 and self.dropped_by_kernel == 0 and self.dropped_by_interface == 0


class Capture:
    """tcpdump on `lo` for the RTP that passes through one relay's port range, into `path`."""

    def __init__(self, path: Path, port_min: int, port_max: int, cpu: str | None, buffer_kib: int = 262_144) -> None:
        self.path = path
        self.stats = CaptureStats()
        # Only whole 172-byte G.711 packets (len: the frame on lo, 14-byte Ethernet header included),
        # so every record has the same length and numpy can read the file in one go.
        expression = f"udp and portrange {port_min}-{port_max} and len = {SNAPLEN + 160}"
        argv = [
            "tcpdump", "-i", "lo", "-n", "-q", "-Z", "root", "-B", str(buffer_kib), "-s", str(SNAPLEN),
            "--time-stamp-precision", "nano", "-w", str(path), expression,
        ]  # fmt: skip
        self.argv = ["taskset", "-c", cpu, *argv] if cpu is not None else argv
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr = path.with_suffix(".tcpdump.log")

    def start(self) -> None:
        with self._stderr.open("wb") as err:
            self.proc = processes.spawn(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # "listening on lo" once the ring is set up
            if "listening on" in self._stderr.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"tcpdump did not start: {self._stderr.read_text(errors='replace')}")

    def stop(self) -> CaptureStats:
        if self.proc is not None:
            processes.stop(self.proc, [(signal.SIGINT, 20.0), (signal.SIGTERM, 5.0)])
        text = self._stderr.read_text(errors="replace")
        for attr, label in (
            ("captured", "packets captured"),
            ("received_by_filter", "packets received by filter"),
            ("dropped_by_kernel", "packets dropped by kernel"),
            ("dropped_by_interface", "packets dropped by interface"),
        ):
            m = re.search(rf"(\d+) {label}", text)
            if m:
                setattr(self.stats, attr, int(m.group(1)))
        return self.stats


@dataclass
class Packets:
    """One capture's RTP packets, in capture order."""

    t: np.ndarray  # seconds (float64, nanosecond stamps)
    sport: np.ndarray
    dport: np.ndarray
    key: np.ndarray  # ssrc << 16 | seq: the same on the way in and out of an untouched relay
    ssrc: np.ndarray
    seq: np.ndarray


def read_rtp(path: Path) -> Packets:
    raw = np.fromfile(path, dtype=np.uint8)
    magic = int(raw[:4].view("<u4")[0]) if raw.size >= 24 else 0
    if magic not in (_PCAP_NS, _PCAP_US):
        raise ValueError(f"{path}: not a pcap file")
    record = 16 + SNAPLEN
    body = raw[24:]
    n = body.size // record
    rec = body[: n * record].reshape(n, record)
    if n and not np.all(rec[:, 8:12].copy().view("<u4").ravel() == SNAPLEN):
        raise ValueError(f"{path}: records of another length (is the capture filter right?)")
    sec = rec[:, 0:4].copy().view("<u4").ravel().astype(np.int64)
    sec = (sec - (sec[0] if n else 0)).astype(np.float64)  # seconds since the first: keeps nanoseconds
    frac = rec[:, 4:8].copy().view("<u4").ravel().astype(np.float64)
    t = sec + frac * (1e-9 if magic == _PCAP_NS else 1e-6)
    pkt = rec[:, 16:]
    if n and not np.all(pkt[:, 14] == 0x45):
        raise ValueError(f"{path}: IPv4 packets with options, or not IPv4")
    sport = pkt[:, 34:36].copy().view(">u2").ravel().astype(np.int64)
    dport = pkt[:, 36:38].copy().view(">u2").ravel().astype(np.int64)
    seq = pkt[:, 44:46].copy().view(">u2").ravel().astype(np.int64)
    ssrc = pkt[:, 50:54].copy().view(">u4").ravel().astype(np.int64)
    return Packets(t=t, sport=sport, dport=dport, key=(ssrc << 16) | seq, ssrc=ssrc, seq=seq)


@dataclass
class DirectionReport:
    """One direction of the relay (caller -> callee, or back) over a capture window."""

    streams: int = 0  # distinct SSRCs entering
    streams_relayed: int = 0  # of which at least one packet came out
    packets_in: int = 0  # entering the relay inside the window
    packets_out: int = 0  # of those, seen leaving it
    lost: int = 0
    capture_gaps: int = 0  # sequence numbers missing on the way *in*: the capture's loss, not the relay's
    unmatched_out: int = 0  # leaving without having been seen entering (a capture gap, or a duplicate)
    delay_min_ms: float = float("nan")
    delay_p50_ms: float = float("nan")
    delay_p99_ms: float = float("nan")
    delay_p999_ms: float = float("nan")
    delay_max_ms: float = float("nan")

    @property
    def loss(self) -> float:
        return self.lost / self.packets_in if self.packets_in else float("nan")

    @property
    def added_jitter_p99_ms(self) -> float:
        """How much later than the fastest packet the 99th percentile left: the jitter the relay adds."""
        return self.delay_p99_ms - self.delay_min_ms


def _sequence_gaps(ssrc: np.ndarray, seq: np.ndarray) -> int:
    """Missing sequence numbers inside each stream (between its first and last packet seen)."""
    if ssrc.size == 0:
        return 0
    order = np.lexsort((seq, ssrc))
    s, q = ssrc[order], seq[order]
    same = s[1:] == s[:-1]
    step = (q[1:] - q[:-1])[same]
    step = step[(step > 1) & (step < 30_000)]  # a wrap around 65535 is no gap
    return int((step - 1).sum())


def relay_report(
    packets: Packets, sender_port: int, receiver_port: int, edge: float = 0.5
) -> tuple[DirectionReport, np.ndarray]:
    """Match what `sender_port` sent into the relay with what the relay sent on to `receiver_port`.

    Packets entering in the first and last `edge` seconds of the capture are left out (the ones
    just before the start left before the capture began; the last ones may leave after it ended).
    Returns the report and the per-packet delays (ms) of the matched packets.
    """
    report = DirectionReport()
    inbound = packets.sport == sender_port
    outbound = packets.dport == receiver_port
    if not inbound.any():
        return report, np.empty(0)
    t_first, t_last = packets.t[0], packets.t[-1]
    window = inbound & (packets.t >= t_first + edge) & (packets.t <= t_last - edge)
    in_key, in_t = packets.key[window], packets.t[window]
    report.streams = int(np.unique(packets.ssrc[window]).size)
    report.packets_in = int(in_key.size)
    report.capture_gaps = _sequence_gaps(packets.ssrc[inbound], packets.seq[inbound])
    out_key, out_t = packets.key[outbound], packets.t[outbound]
    order = np.argsort(out_key, kind="stable")
    out_key, out_t = out_key[order], out_t[order]
    pos = np.searchsorted(out_key, in_key)
    pos_clip = np.minimum(pos, max(out_key.size - 1, 0))
    matched = (pos < out_key.size) & (out_key[pos_clip] == in_key) if out_key.size else np.zeros(in_key.size, bool)
    report.packets_out = int(matched.sum())
    report.lost = report.packets_in - report.packets_out
    report.streams_relayed = int(np.unique(packets.ssrc[window][matched]).size)
    # Leaving inside the window (its packet entered after the capture began, whatever the delay).
    late = out_key[(out_t >= t_first + edge) & (out_t <= t_last - edge)]
    all_in = np.sort(packets.key[inbound])
    seen = np.searchsorted(all_in, late)
    seen_clip = np.minimum(seen, max(all_in.size - 1, 0))
    report.unmatched_out = int(((seen >= all_in.size) | (all_in[seen_clip] != late)).sum())
    delays = (out_t[pos_clip[matched]] - in_t[matched]) * 1000.0
    if delays.size:
        p = np.percentile(delays, [0, 50, 99, 99.9, 100])
        report.delay_min_ms, report.delay_p50_ms, report.delay_p99_ms, report.delay_p999_ms, report.delay_max_ms = (
            float(x) for x in p
        )
    return report, delays
