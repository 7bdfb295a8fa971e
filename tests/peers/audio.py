"""WAV files for calls: write test tones, and measure what a recording heard.

Standard library only (``wave``, ``array``); recordings in these tests are a few seconds long, so
plain Python is fast enough here -- it is test code, not a media path.
"""

from __future__ import annotations

import math
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path


def write_tone(
    path: Path, freq_hz: float = 440.0, seconds: float = 2.0, rate: int = 8000, amplitude: float = 0.5
) -> Path:
    """Write a mono 16-bit PCM sine of ``freq_hz`` (0 Hz: silence) to ``path``."""
    n = int(seconds * rate)
    peak = int(32767 * amplitude)
    step = 2 * math.pi * freq_hz / rate
    samples = array("h", (int(peak * math.sin(step * i)) for i in range(n)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@dataclass(frozen=True)
class Wav:
    rate: int
    samples: array[int]  # mono signed 16-bit

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


def read_wav(path: Path) -> Wav:
    """Read a 16-bit PCM WAV as mono samples (channels are averaged)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit samples, expected 16-bit PCM")
        channels, rate = w.getnchannels(), w.getframerate()
        data = array("h", w.readframes(w.getnframes()))
    if channels > 1:
        data = array("h", (sum(data[i : i + channels]) // channels for i in range(0, len(data), channels)))
    return Wav(rate=rate, samples=data)


def rms_dbfs(samples: array[int]) -> float:
    """Loudness of the samples in dB relative to full scale (-inf for digital silence)."""
    if not samples:
        return float("-inf")
    mean_square = sum(s * s for s in samples) / len(samples)
    return 10 * math.log10(mean_square / 32768**2) if mean_square else float("-inf")


def tone_ratio(samples: array[int], rate: int, freq_hz: float) -> float:
    """Share (0..1) of the signal's energy at ``freq_hz`` (Goertzel over the whole signal)."""
    n = len(samples)
    if n == 0:
        return 0.0
    # The frequency itself, not the nearest DFT bin: rounding to a bin loses up to half the energy
    # of a tone that falls between bins, which depends on the recording's length.
    coeff = 2 * math.cos(2 * math.pi * freq_hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    energy = sum(x * x for x in samples)
    return (2 * power / n) / energy if energy else 0.0


def trim_silence(samples: array[int], threshold: int = 200) -> array[int]:
    """The samples from the first to the last one louder than ``threshold``."""
    loud = [i for i in range(len(samples)) if abs(samples[i]) > threshold]
    return samples[loud[0] : loud[-1] + 1] if loud else array("h")
