"""A WAV recorder port: takes 20 ms frames, writes 16-bit PCM as they come, can pause and resume.

Mono for one leg; the stereo variant (one channel per direction) interleaves two frames.
The header is finalised on close, so a recording is complete once `close` returns.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


class WavRecorder:
    def __init__(self, path: Path, sample_rate: int = 8000, channels: int = 1) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.paused = False
        self.frames_written = 0
        self._wav = wave.open(str(path), "wb")
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)

    def write(self, frame: np.ndarray, other: np.ndarray | None = None) -> None:
        """One frame (mono), or a pair (stereo: `frame` left, `other` right)."""
        if self.paused or self._wav is None:
            return
        if self.channels == 2:
            right = other if other is not None else np.zeros_like(frame)
            data = np.column_stack((frame, right[: len(frame)])).astype("<i2")
        else:
            data = np.asarray(frame, dtype="<i2")
        self._wav.writeframes(data.tobytes())
        self.frames_written += len(frame)

    @property
    def duration_seconds(self) -> float:
        return self.frames_written / self.sample_rate

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None
