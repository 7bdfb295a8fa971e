"""Resampling keeps a tone's frequency; framed streaming matches one-shot conversion."""

from __future__ import annotations

import importlib.util
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support.throwaway import missing
from voxswitch.media.frames import samples_per_frame
from voxswitch.media.resample import FrameResampler, StreamResampler, load_wav, resample

BACKENDS = [b for b in ("samplerate", "soxr") if importlib.util.find_spec(b) is not None]


def _sine(rate: int, seconds: float = 1.0, freq: float = 1000.0) -> np.ndarray:
    return (10000 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.int16)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize(("src", "dst"), [(16000, 8000), (8000, 16000), (48000, 8000), (44100, 8000)])
def test_one_shot_keeps_frequency_and_length(src: int, dst: int) -> None:
    out = resample(_sine(src), src, dst)
    assert len(out) == dst and out.dtype == np.int16
    assert _peak_hz(out, dst) == pytest.approx(1000, abs=2)
    assert np.abs(out[200:-200]).max() == pytest.approx(10000, rel=0.02)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), [(16000, 8000), (8000, 16000)])
def test_streaming_in_frames_matches_one_shot(backend: str, src: int, dst: int) -> None:
    signal = _sine(src)
    n = samples_per_frame(src)
    stream = StreamResampler(src, dst, backend=backend)
    out = np.concatenate([stream.process(signal[i : i + n]) for i in range(0, len(signal), n)] + [stream.flush()])
    ref = resample(signal, src, dst)
    assert len(out) == len(ref) == dst
    assert _peak_hz(out, dst) == pytest.approx(1000, abs=2)
    # Different filters, same time alignment: agreement to a few LSB away from the edges.
    assert np.abs(out[100:-100].astype(np.int32) - ref[100:-100]).max() <= 16


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), [(16000, 8000), (8000, 16000), (44100, 8000)])
def test_frame_resampler_gives_exact_frames(backend: str, src: int, dst: int) -> None:
    signal = _sine(src)
    n, m = samples_per_frame(src), samples_per_frame(dst)
    fr = FrameResampler(src, dst, backend=backend)
    outs = [fr.process(signal[i : i + n]) for i in range(0, len(signal) - n + 1, n)]
    assert {len(o) for o in outs} == {m}
    out = np.concatenate(outs)
    assert _peak_hz(out[m * 10 :], dst) == pytest.approx(1000, abs=3)


def test_frame_resampler_latency_is_small() -> None:
    if "samplerate" not in BACKENDS:
        missing("libsamplerate (the samplerate package)")
    fr = FrameResampler(16000, 8000, backend="samplerate")
    impulse = np.zeros(320, dtype=np.int16)
    impulse[0] = 20000
    out = np.concatenate([fr.process(impulse)] + [fr.process(np.zeros(320, dtype=np.int16)) for _ in range(3)])
    assert np.argmax(np.abs(out)) / 8000 < 0.010  # start-up padding plus filter: under 10 ms


def test_identity_rate_copies() -> None:
    x = _sine(8000, 0.02)
    assert np.array_equal(StreamResampler(8000, 8000).process(x), x)
    assert np.array_equal(FrameResampler(8000, 8000).process(x), x)


def _write_wav(path: Path, samples: np.ndarray, rate: int, width: int, channels: int) -> None:
    x = samples.astype(np.int32)
    if width == 1:
        raw = ((x >> 8) + 128).astype(np.uint8)
    elif width == 2:
        raw = x.astype("<i2")
    elif width == 3:
        v = (x << 8).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        raw = np.ascontiguousarray(v)
    else:
        raw = (x << 16).astype("<i4")
    per_sample = raw.reshape(len(x), -1)  # the bytes of one sample; channels repeat it side by side
    data = np.concatenate([per_sample] * channels, axis=1).tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)


@pytest.mark.parametrize(
    ("rate", "width", "channels"), [(16000, 2, 1), (44100, 2, 2), (22050, 1, 1), (48000, 3, 1), (32000, 4, 2)]
)
def test_load_wav_any_format_to_8k(tmp_path: Path, rate: int, width: int, channels: int) -> None:
    path = tmp_path / "prompt.wav"
    _write_wav(path, _sine(rate, 0.5), rate, width, channels)
    out = load_wav(path, 8000)
    assert out.dtype == np.int16 and len(out) == 4000
    assert _peak_hz(out, 8000) == pytest.approx(1000, abs=4)
    assert np.abs(out[200:-200]).max() == pytest.approx(10000, rel=0.05)
