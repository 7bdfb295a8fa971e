"""A streaming polyphase resampler in NumPy, for engines whose native rate is not the one wanted.

Interim: `voxswitch.media` is to own the project's resampler; until it lands, TTS uses this one so the
voice layer needs neither SciPy nor the media package. It keeps filter history across chunks, so
audio resampled piece by piece equals audio resampled in one go (no clicks at chunk boundaries).

Theory: upsample by L, low-pass, downsample by M, computed only at the kept outputs. Output n sits
at upsampled index n*M; with p = n*M mod L, y[n] = sum_k h[p + k*L] * x[floor(n*M / L) - k].
"""

from __future__ import annotations

from math import gcd

import numpy as np


class Resampler:
    """Converts int16 mono PCM from `src_rate` to `dst_rate`, one chunk at a time."""

    def __init__(self, src_rate: int, dst_rate: int, *, taps_per_phase: int = 24) -> None:
        g = gcd(src_rate, dst_rate)
        self.src_rate, self.dst_rate = src_rate, dst_rate
        self.up, self.down = dst_rate // g, src_rate // g
        self.taps = taps_per_phase
        n = taps_per_phase * self.up
        # Cut-off just under the lower of the two Nyquist limits, in cycles per upsampled sample.
        fc = 0.5 / max(self.up, self.down) * 0.92
        t = np.arange(n) - (n - 1) / 2
        h = 2 * fc * np.sinc(2 * fc * t) * np.kaiser(n, 8.0)
        h *= self.up / h.sum()  # unity DC gain after zero-stuffing
        # phases[p, k] = h[p + k*L]
        self._phases = h.reshape(taps_per_phase, self.up).T.astype(np.float64)
        self._history = np.zeros(taps_per_phase - 1, dtype=np.float64)
        self._consumed = 0  # input samples seen so far
        self._next_out = 0  # index of the next output sample

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return chunk.astype(np.int16, copy=True)
        buf = np.concatenate((self._history, chunk.astype(np.float64)))
        buf_start = self._consumed - (self.taps - 1)  # absolute input index of buf[0]
        self._consumed += chunk.size
        # Outputs whose newest needed input, floor(n*M/L), has arrived: n*M < consumed*L.
        last_out = (self._consumed * self.up - 1) // self.down
        n = np.arange(self._next_out, last_out + 1, dtype=np.int64)
        self._next_out = last_out + 1
        self._history = buf[buf.size - (self.taps - 1) :]
        if not n.size:
            return np.zeros(0, dtype=np.int16)
        pos = n * self.down
        newest = pos // self.up - buf_start
        idx = newest[:, None] - np.arange(self.taps)[None, :]
        y = np.einsum("ij,ij->i", self._phases[pos % self.up], buf[idx])
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)

    def flush(self) -> np.ndarray:
        """Pushes the filter's delay line out with silence, so the tail of the audio is not lost."""
        return self.process(np.zeros(self.taps // 2, dtype=np.int16))


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """One-shot convenience over `Resampler`."""
    r = Resampler(src_rate, dst_rate)
    return np.concatenate((r.process(pcm), r.flush()))
