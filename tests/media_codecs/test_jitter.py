"""Jitter buffer behaviour on synthetic RTP streams: every scenario drives push/pop with explicit times."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest

from voxswitch.media.frames import NARROWBAND
from voxswitch.media.jitter import JitterBuffer, JitterConfig

TPF = 160  # timestamp units per 20 ms at 8 kHz
PTIME = 0.020
# Scenario tests start at the delay a calm network settles on, so no adaptation step disturbs them;
# adaptation has its own tests.
CALM = JitterConfig(initial_delay=0.020)


MARK = 16000


def frame(n: int) -> np.ndarray:
    """Frame number ``n`` carries ``n`` in sample 0 and a full-level mark in sample 1, to see attenuation."""
    f = np.zeros(160, dtype=np.int16)
    f[0], f[1] = n, MARK
    return f


def ident(f: np.ndarray) -> int:
    """A played frame's number; 0 for silence; ``-k`` for concealment at gain 1/k."""
    if f[1] == MARK:
        return int(f[0])
    return -round(MARK / int(f[1])) if f[1] else 0


Packet = tuple[float, int, int, int, bool]  # arrival, seq, timestamp, frame number, marker


def stream(count: int, *, seq0: int = 1000, ts0: int = 50_000, start: float = 0.0, first: int = 1) -> list[Packet]:
    return [
        (start + k * PTIME, (seq0 + k) & 0xFFFF, (ts0 + k * TPF) & 0xFFFFFFFF, first + k, k == 0) for k in range(count)
    ]


def run(jb: JitterBuffer, packets: Iterable[Packet], until: float, phase: float = 0.010) -> list[int]:
    """Deliver packets at their arrival times and pop every 20 ms; returns each popped frame's ``ident``."""
    pending = sorted(packets, key=lambda p: p[0])
    out: list[int] = []
    i = 0
    for tick in range(int(until / PTIME)):
        now = tick * PTIME + phase
        while i < len(pending) and pending[i][0] <= now:
            arrival, seq, ts, n, marker = pending[i]
            jb.push(seq, ts, frame(n), arrival, marker=marker)
            i += 1
        popped = jb.pop(now)
        assert popped.shape == (160,) and popped.dtype == np.int16
        out.append(ident(popped))
    return out


def played(out: list[int]) -> list[int]:
    """Frame numbers of the real (non-concealed, non-silent) frames, in output order."""
    return [v for v in out if v > 0]


def test_in_order_stream_plays_everything_once_in_order() -> None:
    jb = JitterBuffer(NARROWBAND, CALM)
    out = run(jb, stream(50), until=1.5)
    assert played(out) == list(range(1, 51))
    # Starts after the initial target (60 ms), then no gap until the end of the stream.
    first = out.index(1)
    assert out[first : first + 50] == list(range(1, 51))
    s = jb.stats
    assert (s.received, s.late, s.lost, s.duplicates, s.played) == (50, 0, 0, 0, 50)
    assert s.jitter == pytest.approx(0, abs=1e-9) and s.target_delay == pytest.approx(0.020)


def test_reordered_packets_come_out_in_order() -> None:
    packets = stream(40)
    for k in range(0, 40, 2):  # swap every pair: the second of each pair overtakes the first by 15 ms
        a, b = packets[k], packets[k + 1]
        packets[k], packets[k + 1] = (b[0] + 0.005, *a[1:]), (b[0] - 0.010, *b[1:])
    jb = JitterBuffer(NARROWBAND, CALM)
    out = run(jb, packets, until=1.2)
    assert played(out) == list(range(1, 41))
    assert jb.stats.late == 0 and jb.stats.lost == 0


def test_duplicates_are_dropped_and_counted() -> None:
    packets = stream(30)
    packets += [(p[0] + 0.001, *p[1:]) for p in packets] + [(p[0] + 0.3, *p[1:]) for p in packets[:5]]
    jb = JitterBuffer(NARROWBAND, CALM)
    out = run(jb, packets, until=1.0)
    assert played(out) == list(range(1, 31))
    assert jb.stats.duplicates == 35 and jb.stats.received == 30 and jb.stats.late == 0


def test_late_packet_is_dropped_and_its_slot_concealed() -> None:
    packets = stream(30)
    packets[10] = (packets[10][0] + 0.5, *packets[10][1:])  # frame 11 arrives 500 ms late
    jb = JitterBuffer(NARROWBAND, JitterConfig(initial_delay=0.02, resync_threshold=1.0))
    out = run(jb, packets, until=1.0)
    assert played(out) == [n for n in range(1, 31) if n != 11]
    i = out.index(10)
    assert out[i + 1] == -2  # frame 10 repeated at -6 dB in frame 11's slot
    assert jb.stats.late == 1 and jb.stats.lost == 0
    assert jb.stats.concealed == 1 + 3  # its slot, then the fade-out after the last frame


def test_loss_is_concealed_then_silenced() -> None:
    packets = [p for p in stream(40) if not 11 <= p[3] <= 17]  # lose frames 11..17
    jb = JitterBuffer(NARROWBAND, CALM)
    out = run(jb, packets, until=1.2)
    i = out.index(10)
    assert out[i : i + 9] == [10, -2, -4, -8, 0, 0, 0, 0, 18]  # -6 dB per miss, silence after 3
    s = jb.stats
    assert (s.lost, s.concealed, s.late) == (7, 6, 0)  # 3 in the gap, 3 fading out after the last frame
    assert played(out) == [*range(1, 11), *range(18, 41)]


def test_sequence_and_timestamp_wrap_around() -> None:
    jb = JitterBuffer(NARROWBAND, CALM)
    packets = stream(40, seq0=65_520, ts0=2**32 - 20 * TPF)
    out = run(jb, packets, until=1.2)
    assert played(out) == list(range(1, 41))
    s = jb.stats
    assert (s.lost, s.late, s.resyncs, s.talkspurts) == (0, 0, 0, 1)


def test_delay_adapts_up_under_jitter_and_back_down_when_calm() -> None:
    rng = np.random.default_rng(7)
    jittery = [(p[0] + rng.uniform(0, 0.08), *p[1:]) for p in stream(250)]  # 5 s, up to 80 ms extra
    calm = stream(250, seq0=1250, ts0=50_000 + 250 * TPF, start=5.0, first=251)
    calm = [(a, s, t, n, False) for a, s, t, n, _ in calm]
    jb = JitterBuffer(NARROWBAND)
    run_packets = jittery + calm
    pending = sorted(run_packets, key=lambda p: p[0])
    out: list[int] = []
    i = 0
    targets, delays, late_at_5s = [], [], 0
    for tick in range(int(10.2 / PTIME)):
        now = tick * PTIME + 0.01
        while i < len(pending) and pending[i][0] <= now:
            a, s, t, n, m = pending[i]
            jb.push(s, t, frame(n), a, marker=m)
            i += 1
        out.append(ident(jb.pop(now)))
        if tick == 249:
            targets.append(jb.stats.target_delay)
            delays.append(jb.stats.delay)
            late_at_5s = jb.stats.late
    s = jb.stats
    assert 0.06 <= targets[0] <= 0.1, targets  # grew from 20 ms towards the 95th percentile of 0..80 ms
    assert delays[0] >= 0.05
    assert late_at_5s <= 25  # ~5 % by design, plus the start-up before the history was learnt
    assert s.target_delay == pytest.approx(0.020)  # calm for 5 s: back to the minimum
    assert s.delay <= 0.045  # and the playout caught up by dropping frames
    assert s.dropped >= 1
    assert played(out)[-20:] == list(range(481, 501))


def test_new_talkspurt_after_silence_suppression_plays_from_its_start() -> None:
    first = stream(25)
    # 1 s of silence: the sender sends nothing, its timestamps keep running, the marker flags the restart.
    second = stream(25, seq0=1025, ts0=50_000 + (25 + 50) * TPF, start=(25 + 50) * PTIME, first=26)
    jb = JitterBuffer(NARROWBAND, CALM)
    out = run(jb, first + second, until=2.5)
    assert played(out) == list(range(1, 51))
    s = jb.stats
    assert (s.talkspurts, s.lost, s.late, s.resyncs) == (2, 0, 0, 0)
    i = out.index(25)
    assert out[i + 1 : i + 5] == [-2, -4, -8, 0]  # fades out into the silence


def test_timestamp_jump_without_marker_starts_a_talkspurt() -> None:
    second = stream(10, seq0=1010, ts0=50_000 + 40 * TPF, start=40 * PTIME, first=11)
    second = [(a, s, t, n, False) for a, s, t, n, _ in second]
    jb = JitterBuffer(NARROWBAND, CALM)
    out = run(jb, stream(10) + second, until=1.5)
    assert played(out) == list(range(1, 21))
    assert jb.stats.talkspurts == 2


def test_timestamp_restart_resyncs() -> None:
    # After 20 frames the sender restarts its timestamps at random (new source clock), keeping its sequence.
    second = stream(20, seq0=1020, ts0=3_000_000_000, start=20 * PTIME, first=21)
    jb = JitterBuffer(NARROWBAND, CALM)
    out = run(jb, stream(20) + second, until=1.5)
    assert played(out) == list(range(1, 41))
    s = jb.stats
    assert s.resyncs == 1 and s.late == 0 and s.lost == 0


def test_sequence_restart_resyncs() -> None:
    second = stream(20, seq0=40_000, ts0=9_000, start=20 * PTIME, first=21)
    jb = JitterBuffer(NARROWBAND, CALM)
    out = run(jb, stream(20) + second, until=1.5)
    assert played(out) == list(range(1, 41))
    assert jb.stats.resyncs == 1 and jb.stats.lost == 0


def test_pop_before_anything_arrives_is_silence() -> None:
    jb = JitterBuffer(NARROWBAND)
    assert not jb.pop(0.0).any() and jb.stats.silence == 1
    jb.push(1, 160, frame(1), 0.0)
    assert not jb.pop(0.02).any()  # waiting out the initial delay
    assert ident(jb.pop(0.061)) == 1


def test_overflow_drops_oldest() -> None:
    jb = JitterBuffer(NARROWBAND, JitterConfig(capacity=5))
    for k in range(8):
        jb.push(k, k * TPF, frame(k + 1), 0.0)
    assert jb.stats.buffered == 5 and jb.stats.dropped == 3
    assert ident(jb.pop(1.0)) == 4
