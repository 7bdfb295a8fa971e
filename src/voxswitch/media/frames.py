"""The frame convention every audio port speaks.

A frame is 20 ms of audio as a NumPy ``int16`` array at the port's sample rate: 160 samples at 8 kHz
(G.711), 320 at 16 kHz (G.722, L16/16000). Mono frames are 1-D; the rare multi-channel frame has shape
``(samples, channels)``. Players, recorders, mixers, codecs, TTS, STT and agents all exchange frames, so
any two ports plug together once their ``AudioFormat`` matches (DESIGN.md, house rule 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_MS",
    "NARROWBAND",
    "WIDEBAND",
    "AudioFormat",
    "Frame",
    "as_frame",
    "float_to_int16",
    "int16_to_float",
    "samples_per_frame",
    "silence",
]

FRAME_MS = 20
"""Frame duration in milliseconds: the RTP packetisation time every leg uses (RFC 3551 §4.5 default)."""

Frame = npt.NDArray[np.int16]
"""One frame (or a batch of consecutive frames) of signed 16-bit linear PCM."""


def samples_per_frame(rate: int, ms: int = FRAME_MS) -> int:
    """Samples per channel in ``ms`` milliseconds at ``rate`` Hz; exact for every telephony rate."""
    samples, rest = divmod(rate * ms, 1000)
    if rest:
        raise ValueError(f"{ms} ms at {rate} Hz is not a whole number of samples")
    return samples


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Sample rate and channel count of a port's frames; the sample type is always int16."""

    rate: int
    channels: int = 1

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.channels <= 0:
            raise ValueError(f"invalid audio format {self.rate} Hz x {self.channels}")

    @property
    def frame_samples(self) -> int:
        """Samples per channel in one 20 ms frame."""
        return samples_per_frame(self.rate)

    @property
    def frame_shape(self) -> tuple[int] | tuple[int, int]:
        return (self.frame_samples,) if self.channels == 1 else (self.frame_samples, self.channels)

    @property
    def frame_bytes(self) -> int:
        return self.frame_samples * self.channels * 2


NARROWBAND = AudioFormat(8000)
WIDEBAND = AudioFormat(16000)


def silence(fmt: AudioFormat = NARROWBAND, frames: int = 1) -> Frame:
    """A new zeroed frame (or ``frames`` consecutive ones), writable so callers may fill it."""
    shape = (fmt.frame_samples * frames,) if fmt.channels == 1 else (fmt.frame_samples * frames, fmt.channels)
    return np.zeros(shape, dtype=np.int16)


def as_frame(samples: npt.ArrayLike, fmt: AudioFormat = NARROWBAND) -> Frame:
    """Check ``samples`` is exactly one frame of ``fmt`` and return it as int16 (no copy if it already is)."""
    arr = np.asarray(samples)
    if arr.dtype != np.int16:
        raise TypeError(f"frame must be int16, got {arr.dtype}")
    if arr.shape != fmt.frame_shape:
        raise ValueError(f"frame shape {arr.shape} != {fmt.frame_shape} for {fmt}")
    return arr


def int16_to_float(frame: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """Scale int16 to float32 in [-1, 1): the range DSP code and ML models expect."""
    return frame.astype(np.float32) * np.float32(1.0 / 32768.0)


def float_to_int16(samples: npt.ArrayLike) -> Frame:
    """Scale float audio in [-1, 1] to int16, rounding and clipping so overs saturate instead of wrapping."""
    arr: npt.NDArray[np.float32] = np.asarray(samples, dtype=np.float32) * np.float32(32768.0)
    out: Frame = np.clip(np.rint(arr), -32768, 32767).astype(np.int16)
    return out
