"""WAV files for calls: write test tones, and measure what a recording heard.

The standard library (``wave``, ``array``) and NumPy for spectra; recordings in these tests are a
few seconds long.
"""

from __future__ import annotations

import math
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def tone_ratio(samples: array[int], rate: int, freq_hz: float, band_hz: float = 25.0) -> float:
    """Share (0..1) of the signal's energy within ``band_hz`` of ``freq_hz``.

    A band, not one frequency: a tone that crossed a jitter buffer (a frame dropped or repeated)
    keeps its pitch but not its phase, which spreads its energy over a few hertz around it. The
    spectrum is taken per 0.25 s block (Hann window), so gaps and phase jumps cost little.
    """
    x = np.asarray(samples, dtype=np.float64)
    energy = float(x @ x)
    if energy == 0.0:
        return 0.0
    block = max(64, int(rate * 0.25))
    window = np.hanning(block)
    inside = total = 0.0
    for start in range(0, len(x) - block + 1, block // 2):
        spectrum = np.abs(np.fft.rfft(x[start : start + block] * window)) ** 2
        freqs = np.fft.rfftfreq(block, 1 / rate)
        inside += float(spectrum[np.abs(freqs - freq_hz) <= band_hz].sum())
        total += float(spectrum.sum())
    return inside / total if total else 0.0


def trim_silence(samples: array[int], threshold: int = 200) -> array[int]:
    """The samples from the first to the last one louder than ``threshold``."""
    loud = [i for i in range(len(samples)) if abs(samples[i]) > threshold]
    return samples[loud[0] : loud[-1] + 1] if loud else array("h")
