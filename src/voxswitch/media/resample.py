"""Sample-rate conversion: a streaming resampler per leg, and a one-shot one for whole files.

Why two libraries. A leg resamples 20 ms at a time and must hand on 20 ms at once, with a few ms of
latency at most. libsoxr's streaming API (``soxr.ResampleStream``) buffers internally in large blocks:
at 16 kHz <-> 8 kHz with quality HQ it returns nothing for five frames, then 100 ms in one burst, so
framing its output would add about 100 ms of delay to every transcoded call. libsamplerate (PyPI
``samplerate``) returns a steady frame per call after a 5 ms start-up, so ``StreamResampler`` uses it,
and falls back to soxr (with the added latency, but correct) when it is missing. For files, where latency
is irrelevant, ``resample`` uses soxr's one-shot HQ converter, which compensates its own delay.

Both keep their filter state between calls, so consecutive frames join without clicks. Resampling a
frame is CPU work measured in tens of microseconds; a long file is milliseconds: run it in a thread.
"""

from __future__ import annotations

import wave
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voxswitch.media.frames import Frame, float_to_int16

__all__ = ["FrameResampler", "StreamResampler", "load_wav", "resample"]

try:
    import samplerate as _samplerate  # type: ignore[import-not-found, import-untyped, unused-ignore]
except ImportError:  # pragma: no cover - exercised only where libsamplerate is absent
    _samplerate = None

try:
    import soxr as _soxr  # type: ignore[import-untyped, unused-ignore]
except ImportError:  # pragma: no cover
    _soxr = None


class StreamResampler:
    """Stateful conversion of a stream in chunks of any size; output length varies at start-up only.

    ``process`` returns what the filter can produce so far (output is time-aligned with input: the
    filter delay shows as fewer samples in the first calls, never as leading zeros); ``flush`` drains
    the tail at end of stream.
    """

    def __init__(self, in_rate: int, out_rate: int, *, backend: str | None = None) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.in_rate, self.out_rate = in_rate, out_rate
        self._ratio = out_rate / in_rate
        self._in_total = 0
        self._out_total = 0
        self.backend = backend or ("samplerate" if _samplerate is not None else "soxr")
        self._impl: Any
        if in_rate == out_rate:
            self.backend = "identity"
        elif self.backend == "samplerate":
            if _samplerate is None:
                raise RuntimeError("the samplerate package is not installed")
            self._impl = _samplerate.Resampler("sinc_medium", channels=1)
        elif self.backend == "soxr":
            if _soxr is None:
                raise RuntimeError("neither samplerate nor soxr is installed")
            self._impl = _soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        else:
            raise ValueError(f"unknown resampler backend {backend!r}")

    def process(self, samples: Frame, last: bool = False) -> Frame:
        """Feed int16 samples, get the int16 samples now available."""
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        self._in_total += samples.shape[0]
        if self.backend == "identity":
            out = samples.copy()
        elif self.backend == "samplerate":
            pcm = samples.astype(np.float32) * np.float32(1.0 / 32768.0)
            out = float_to_int16(self._impl.process(pcm, self._ratio, end_of_input=last))
        else:
            out = self._impl.resample_chunk(samples, last=last)
        self._out_total += out.shape[0]
        return out

    def flush(self) -> Frame:
        """The remaining tail, up to the exact total ``round(samples_in * out_rate / in_rate)``."""
        want = round(self._in_total * self._ratio) - self._out_total
        if want <= 0 or self.backend == "identity":
            return np.zeros(0, dtype=np.int16)
        if self.backend == "samplerate":
            # libsamplerate drains its look-ahead only while fed; pad with silence and trim.
            pad = np.zeros(max(self.in_rate // 50, 64), dtype=np.int16)
            out = float_to_int16(self._impl.process(pad.astype(np.float32), self._ratio, end_of_input=True))
        else:
            out = self._impl.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        out = out[:want]
        self._out_total += out.shape[0]
        return out


class FrameResampler:
    """A port-shaped resampler: each call returns exactly ``len(input) * out_rate / in_rate`` samples.

    Start-up filter delay is covered by zeros at the front (about 5 ms with libsamplerate), after which
    every 20 ms frame in gives one 20 ms frame out, as the frame convention requires.
    """

    def __init__(self, in_rate: int, out_rate: int, *, backend: str | None = None) -> None:
        self._stream = StreamResampler(in_rate, out_rate, backend=backend)
        self.in_rate, self.out_rate = in_rate, out_rate
        self._pending: deque[Frame] = deque()
        self._pending_len = 0
        self._in_total = 0
        self._out_total = 0

    @property
    def backend(self) -> str:
        return self._stream.backend

    def process(self, samples: Frame) -> Frame:
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        self._in_total += samples.shape[0]
        want = self._in_total * self.out_rate // self.in_rate - self._out_total
        chunk = self._stream.process(samples)
        if chunk.shape[0]:
            self._pending.append(chunk)
            self._pending_len += chunk.shape[0]
        if self._pending_len < want:  # start-up (or a bursty backend): pad in front, delaying the stream
            self._pending.appendleft(np.zeros(want - self._pending_len, dtype=np.int16))
            self._pending_len = want
        if want == 0:
            return np.zeros(0, dtype=np.int16)
        out = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if out.shape[0] > want:
            self._pending.append(out[want:])
        self._pending_len = out.shape[0] - want
        self._out_total += want
        return out[:want]


def resample(samples: npt.ArrayLike, in_rate: int, out_rate: int) -> Frame:
    """One-shot conversion of a whole int16 signal (a prompt, a file), delay-compensated, best quality."""
    x = np.asarray(samples, dtype=np.int16).reshape(-1)
    if in_rate == out_rate:
        return x.copy()
    if _soxr is not None:
        return np.asarray(_soxr.resample(x, in_rate, out_rate, quality="VHQ"), dtype=np.int16)
    if _samplerate is not None:  # pragma: no cover - soxr is the installed default
        pcm = x.astype(np.float32) / np.float32(32768.0)
        return float_to_int16(_samplerate.resample(pcm, out_rate / in_rate, "sinc_best"))
    raise RuntimeError("neither soxr nor samplerate is installed")  # pragma: no cover


def _pcm_from_wav_bytes(raw: bytes, width: int, channels: int) -> Frame:
    """Decode WAV PCM of width 1 (unsigned), 2, 3 or 4 bytes to mono int16 by averaging channels."""
    if width == 1:
        ints = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        ints = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 16  # sign-extend 24 bits, keep top 16
    elif width == 4:
        ints = np.frombuffer(raw, dtype="<i4") >> 16
    else:
        raise ValueError(f"unsupported WAV sample width {width}")
    if channels > 1:
        ints = ints.reshape(-1, channels).mean(axis=1).astype(np.int32)
    return ints.astype(np.int16)


def load_wav(path: str | Path, rate: int = 8000) -> Frame:
    """Read a PCM WAV file of any rate, width and channel count as mono int16 at ``rate`` (for players)."""
    with wave.open(str(path), "rb") as wav:
        channels, width, src_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    return resample(_pcm_from_wav_bytes(raw, width, channels), src_rate, rate)
