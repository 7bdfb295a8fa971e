"""What every TTS engine promises, and the small PCM helpers they share.

An engine turns text into 20 ms frames of mono int16 PCM at its own `sample_rate`, streaming: the
first frame is yielded as soon as it exists, so a call can start speaking while the rest of a long
prompt is still being synthesised. Rate conversion to the leg's codec rate is the caller's job.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

FRAME_MS = 20


class TtsError(Exception):
    """A synthesis failed. Names the engine and, for HTTP engines, the status the service answered."""

    def __init__(self, engine: str, message: str, *, status: int | None = None) -> None:
        self.engine = engine
        self.status = status
        self.message = message
        where = f"{engine} TTS" if status is None else f"{engine} TTS (HTTP {status})"
        super().__init__(f"{where}: {message}")

    @property
    def retryable(self) -> bool:
        """Rate limits, server errors and timeouts may pass; a bad key or bad input will not."""
        return self.status is None or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class Voice:
    """One voice an engine offers: the `name` to pass as `voice=`, and the languages it speaks."""

    name: str
    languages: tuple[str, ...]
    gender: str | None = None


@runtime_checkable
class TtsEngine(Protocol):
    """A text-to-speech plugin. Implementations: espeak-ng (embedded), Google, Azure, AWS Polly."""

    @property
    def name(self) -> str: ...

    @property
    def sample_rate(self) -> int: ...

    # Declared with `def`: an `async def` with `yield` (an async generator) satisfies this signature.
    # A generator, not just an iterator, so a caller that stops listening (barge-in) can `aclose()` it
    # and the engine stops working at once.
    def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        """Yield int16 mono frames of exactly `FRAME_MS` at `sample_rate`; the last one zero-padded."""
        ...

    async def voices(self) -> list[Voice]: ...

    async def aclose(self) -> None: ...


def frame_samples(sample_rate: int) -> int:
    """Samples in one 20 ms frame; every rate we use (8k, 16k, 22.05k, 24k, 48k) divides evenly."""
    n, rem = divmod(sample_rate * FRAME_MS, 1000)
    if rem:
        raise ValueError(f"{sample_rate} Hz has no whole number of samples in {FRAME_MS} ms")
    return n


class Framer:
    """Re-cuts PCM chunks of any length into fixed 20 ms frames, carrying the remainder."""

    def __init__(self, sample_rate: int) -> None:
        self.size = frame_samples(sample_rate)
        self._rest = np.zeros(0, dtype=np.int16)

    def push(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        buf = np.concatenate((self._rest, chunk.astype(np.int16, copy=False))) if self._rest.size else chunk
        whole = buf.size - buf.size % self.size
        for start in range(0, whole, self.size):
            yield np.array(buf[start : start + self.size], dtype=np.int16)
        self._rest = np.array(buf[whole:], dtype=np.int16)

    def flush(self) -> np.ndarray | None:
        """The last partial frame, zero-padded to full length, or None when nothing is left."""
        if not self._rest.size:
            return None
        out = np.zeros(self.size, dtype=np.int16)
        out[: self._rest.size] = self._rest
        self._rest = np.zeros(0, dtype=np.int16)
        return out


class PcmDecoder:
    """Little-endian 16-bit bytes from a network stream into int16 arrays; holds an odd trailing byte."""

    def __init__(self) -> None:
        self._odd = b""

    def push(self, data: bytes) -> np.ndarray:
        data = self._odd + data
        cut = len(data) & ~1
        self._odd = data[cut:]
        return np.frombuffer(data[:cut], dtype="<i2").astype(np.int16)
