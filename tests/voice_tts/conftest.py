"""Fixtures for the TTS tests: an espeak-ng engine (libespeak-ng1 must be installed) and audio helpers."""

from __future__ import annotations

import ctypes.util

import numpy as np
import pytest

from tests.support.throwaway import missing
from voxswitch.voice.tts import EspeakEngine, TtsEngine


@pytest.fixture
def espeak() -> EspeakEngine:
    if not (ctypes.util.find_library("espeak-ng") or _loadable("libespeak-ng.so.1")):
        missing("libespeak-ng1")
    return EspeakEngine()


def _loadable(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


async def collect(engine: TtsEngine, text: str, **kwargs: str | None) -> np.ndarray:
    frames = [f async for f in engine.synthesize(text, **kwargs)]
    size = engine.sample_rate * 20 // 1000
    assert frames, "no audio"
    assert all(f.dtype == np.int16 and f.shape == (size,) for f in frames), "frames must be 20 ms of int16"
    return np.concatenate(frames)


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * rate / pcm.size)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
