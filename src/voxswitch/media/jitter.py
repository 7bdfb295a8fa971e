"""Adaptive jitter buffer for legs whose audio we consume (STT, recording, mixing, agents).

Theory of operation. Packets carry RTP sequence numbers and timestamps (RFC 3550 §5.1) and one decoded
20 ms frame each. ``push`` files a frame under its *extended* timestamp (wrap-around removed, §A.1);
``pop(now)`` is called once per 20 ms by the leg's clock and returns exactly one frame: the next one in
timestamp order if it has arrived, otherwise a concealment frame. Pure logic: time is passed in.

Playout schedule. For each packet the *transit* is ``arrival - timestamp / clock_rate`` (§A.8: sender
and receiver clocks differ by an unknown constant, so only differences matter). Frame ``ts`` is due at
``ts / clock_rate + min_transit + target``: the fastest recent packet waits ``target``, and ``target``
is the spread between the fastest and the ``quantile`` (95 %) transit over the last ``window`` packets,
clamped to [min_delay, max_delay]. So the delay rises as soon as packets come late, and falls back
when the last ``window`` packets (2 s) were calm. The RFC 3550 §A.8 interarrival jitter is kept too,
for RTCP reports.

Applying the target. At each talkspurt start (marker bit, RFC 3551 §4.1, or a timestamp jump that the
sequence numbers do not explain: the sender was silent) playout re-anchors to the schedule, so delay
changes fall in silence. Within a talkspurt, a missing frame while we play ahead of schedule holds the
play point (one concealed frame, delay grows by 20 ms); a frame present while we lag more than a frame
behind schedule is dropped, at most once per ``adjust_interval`` frames.

Faults. Duplicates and packets whose time has passed (late) are dropped and counted. A sequence jump
beyond RFC 3550 §A.1's dropout/misorder limits, or an in-order packet whose transit is off by more than
``resync_threshold`` (the sender restarted its timestamps), resets the buffer around that packet.
A missing frame is concealed by repeating the last frame, ``conceal_gain`` (-6 dB) quieter per
consecutive miss, for ``conceal_frames`` frames, then by silence.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from voxswitch.media.frames import FRAME_MS, AudioFormat, Frame, samples_per_frame, silence

__all__ = ["JitterBuffer", "JitterConfig", "JitterStats"]

_MAX_DROPOUT = 3000  # RFC 3550 §A.1
_MAX_MISORDER = 100
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class JitterConfig:
    clock_rate: int = 8000
    min_delay: float = 0.020
    max_delay: float = 0.200
    initial_delay: float = 0.060
    """Target until ``warmup`` packets have shown what the network does."""
    warmup: int = 10
    quantile: float = 0.95
    window: int = 100
    """Packets of transit history: 2 s at 20 ms, how long calm must last before the delay falls."""
    conceal_frames: int = 3
    conceal_gain: float = 0.5
    adjust_interval: int = 10
    resync_threshold: float = 0.5
    capacity: int = 50


@dataclass(frozen=True, slots=True)
class JitterStats:
    received: int
    duplicates: int
    late: int
    lost: int
    """Network loss as RFC 3550 §A.3 counts it: expected minus received, from sequence numbers."""
    played: int
    concealed: int
    silence: int
    dropped: int
    """Frames discarded to shrink the delay or because the buffer overflowed."""
    talkspurts: int
    resyncs: int
    buffered: int
    jitter: float
    """RFC 3550 §A.8 interarrival jitter, seconds."""
    target_delay: float
    delay: float
    """Playout delay of the last frame played, relative to the fastest recent packet, seconds."""


class JitterBuffer:
    """Reorders, de-duplicates and paces decoded frames of one RTP stream (one SSRC)."""

    def __init__(self, fmt: AudioFormat, config: JitterConfig | None = None) -> None:
        self.fmt = fmt
        self.config = config or JitterConfig()
        self._clock = float(self.config.clock_rate)
        self._tpf = samples_per_frame(self.config.clock_rate, FRAME_MS)  # timestamp units per frame
        self._frame_dur = FRAME_MS / 1000.0
        self._silence = silence(fmt)
        self._silence.flags.writeable = False
        self._last: Frame | None = None
        self._miss_run = 0
        self._delay = 0.0
        self._jitter = 0.0
        self._counts = dict.fromkeys(
            ("received", "duplicates", "late", "played", "concealed", "silence", "dropped", "talkspurts", "resyncs"),
            0,
        )
        self._lost_before = 0
        self._reset_epoch()

    # --- stream bookkeeping ---------------------------------------------------------------------

    def _reset_epoch(self) -> None:
        """Forget the stream position (start, or a hard resync); keeps cumulative counters."""
        self._frames: dict[int, Frame] = {}
        self._spurt_starts: set[int] = set()
        self._played: deque[int] = deque(maxlen=self.config.capacity)
        self._playing = False
        self._next_ts: int | None = None  # everything before it has been played or given up
        self._max_seq: int | None = None
        self._max_ts = 0
        self._base_seq = 0
        self._received_epoch = 0
        self._transits = np.zeros(self.config.window, dtype=np.float64)
        self._n_transits = 0
        self._last_transit: float | None = None
        self._min_transit = 0.0
        self._target = self.config.initial_delay
        self._since_adjust = 0

    def _epoch_lost(self) -> int:
        if self._max_seq is None:
            return 0
        return max(0, self._max_seq - self._base_seq + 1 - self._received_epoch)

    def _hard_resync(self) -> list[Frame]:
        """Start a new epoch; returns the frames still waiting, in order, to be played before the new ones."""
        waiting = [self._frames[ts] for ts in sorted(self._frames)]
        self._lost_before += self._epoch_lost()
        self._counts["resyncs"] += 1
        self._reset_epoch()
        return waiting

    def _carry_over(self, waiting: list[Frame], before: int) -> None:
        """Re-file the old epoch's frames back to back just before timestamp ``before`` of the new one."""
        for i, old in enumerate(waiting):
            self._frames[before - (len(waiting) - i) * self._tpf] = old

    def _observe_transit(self, transit: float) -> None:
        cfg = self.config
        if self._last_transit is not None:
            self._jitter += (abs(transit - self._last_transit) - self._jitter) / 16.0
        self._last_transit = transit
        self._transits[self._n_transits % cfg.window] = transit
        self._n_transits += 1
        history = self._transits[: min(self._n_transits, cfg.window)]
        self._min_transit = float(history.min())
        spread = float(np.quantile(history, cfg.quantile)) - self._min_transit
        target = min(max(spread, cfg.min_delay), cfg.max_delay)
        if self._n_transits < cfg.warmup:
            target = max(target, cfg.initial_delay)
        self._target = target

    # --- input ----------------------------------------------------------------------------------

    def push(self, seq: int, timestamp: int, frame: Frame, arrival_time: float, marker: bool = False) -> bool:
        """File one packet's frame; False when it is dropped as a duplicate or as late."""
        cfg = self.config
        if self._max_seq is not None:
            dseq = ((seq - self._max_seq) + 0x8000) % 0x10000 - 0x8000
            if dseq > _MAX_DROPOUT or dseq < -_MAX_MISORDER:  # the sender restarted its sequence
                return self._restart(seq, timestamp, frame, arrival_time)
        if self._max_seq is None:  # first packet of an epoch
            self._max_seq = self._base_seq = seq
            self._max_ts = timestamp
            dseq, dts = 0, 0
            spurt = True
            self._counts["talkspurts"] += 1
        else:
            dseq = ((seq - self._max_seq) + 0x8000) % 0x10000 - 0x8000
            dts = ((timestamp - self._max_ts) + 0x80000000) % 0x100000000 - 0x80000000
            spurt = dseq > 0 and (marker or dts - dseq * self._tpf > self._tpf)
            if dseq > 0 and self._n_transits:
                transit = arrival_time - (self._max_ts + dts) / self._clock
                if abs(transit - self._min_transit) > cfg.resync_threshold:  # timestamps restarted
                    return self._restart(seq, timestamp, frame, arrival_time)
        seq_ext = self._max_seq + dseq
        ts_ext = self._max_ts + dts
        if ts_ext in self._frames or ts_ext in self._played:
            self._counts["duplicates"] += 1
            return False
        self._counts["received"] += 1
        self._received_epoch += 1
        if seq_ext > self._max_seq:
            self._max_seq = seq_ext
        if ts_ext > self._max_ts:
            self._max_ts = ts_ext
        self._observe_transit(arrival_time - ts_ext / self._clock)
        if self._next_ts is not None and ts_ext < self._next_ts:
            self._counts["late"] += 1
            return False
        if spurt and dseq > 0 and self._counts["received"] > 1:
            self._counts["talkspurts"] += 1
        self._frames[ts_ext] = frame
        if spurt:
            self._spurt_starts.add(ts_ext)
        if len(self._frames) > cfg.capacity:
            oldest = min(self._frames)
            del self._frames[oldest]
            self._spurt_starts.discard(oldest)
            self._counts["dropped"] += 1
            if self._playing:
                self._next_ts = min(self._frames)
        return True

    def _restart(self, seq: int, timestamp: int, frame: Frame, arrival_time: float) -> bool:
        waiting = self._hard_resync()
        accepted = self.push(seq, timestamp, frame, arrival_time, marker=True)
        self._carry_over(waiting, self._max_ts)
        return accepted

    # --- output ---------------------------------------------------------------------------------

    def _desired_offset(self) -> float:
        return self._min_transit + self._target

    def _try_start(self, now: float) -> bool:
        """Anchor playout at the earliest buffered frame once its scheduled time has come."""
        if not self._frames:
            return False
        start = min(self._frames)
        if now + _EPS < start / self._clock + self._desired_offset():
            return False
        self._playing, self._next_ts, self._since_adjust = True, start, 0
        return True

    def _conceal(self) -> Frame:
        self._miss_run += 1
        if self._last is not None and self._miss_run <= self.config.conceal_frames:
            self._counts["concealed"] += 1
            gain = np.float32(self.config.conceal_gain**self._miss_run)
            faded: Frame = np.rint(self._last * gain).astype(np.int16)
            return faded
        self._counts["silence"] += 1
        return self._silence

    def _take(self, ts: int) -> Frame | None:
        frame = self._frames.pop(ts, None)
        if frame is not None:
            self._spurt_starts.discard(ts)
            self._played.append(ts)
        return frame

    def pop(self, now: float) -> Frame:
        """The frame to play at ``now``: the next one in order, or concealment (never None)."""
        if not self._playing and not self._try_start(now):
            return self._conceal()
        assert self._next_ts is not None
        ts = self._next_ts
        frame = self._take(ts)
        if frame is None and self._frames:
            upcoming = min(self._frames)
            if upcoming > ts and upcoming in self._spurt_starts:  # silence before a talkspurt: re-anchor
                self._playing = False
                if not self._try_start(now):
                    return self._conceal()
                ts = self._next_ts
                frame = self._take(ts)
        self._since_adjust += 1
        lag = (now - ts / self._clock) - self._desired_offset()
        if frame is None:
            if lag >= -self._frame_dur / 2:  # on schedule: give this frame up
                self._next_ts = ts + self._tpf
            # else ahead of schedule: hold the play point, so the delay grows by one frame
            return self._conceal()
        if (
            lag > self._frame_dur
            and self._since_adjust >= self.config.adjust_interval
            and ts + self._tpf in self._frames
        ):
            self._counts["dropped"] += 1  # behind schedule: skip a frame to shrink the delay
            ts += self._tpf
            frame = self._take(ts)
            assert frame is not None
            lag -= self._frame_dur
            self._since_adjust = 0
        self._next_ts = ts + self._tpf
        self._delay = lag + self._target
        self._counts["played"] += 1
        self._miss_run = 0
        self._last = frame
        return frame

    # --- reporting ------------------------------------------------------------------------------

    @property
    def stats(self) -> JitterStats:
        return JitterStats(
            **self._counts,
            lost=self._lost_before + self._epoch_lost(),
            buffered=len(self._frames),
            jitter=self._jitter,
            target_delay=self._target,
            delay=self._delay,
        )

    def reset(self) -> None:
        """Start over for a new SSRC or after a re-INVITE; counters are kept."""
        self._lost_before += self._epoch_lost()
        self._reset_epoch()
        self._last, self._miss_run = None, 0
