"""The 20 ms frame convention."""

from __future__ import annotations

import numpy as np
import pytest

from voxswitch.media.frames import (
    NARROWBAND,
    WIDEBAND,
    AudioFormat,
    as_frame,
    float_to_int16,
    int16_to_float,
    samples_per_frame,
    silence,
)


def test_frame_sizes() -> None:
    assert (NARROWBAND.frame_samples, WIDEBAND.frame_samples) == (160, 320)
    assert AudioFormat(48000, 2).frame_shape == (960, 2) and AudioFormat(48000, 2).frame_bytes == 3840
    assert samples_per_frame(44100) == 882 and samples_per_frame(8000, 30) == 240
    with pytest.raises(ValueError):
        samples_per_frame(11025)  # 220.5 samples
    with pytest.raises(ValueError):
        AudioFormat(0)


def test_silence_and_as_frame() -> None:
    s = silence(WIDEBAND, frames=3)
    assert s.shape == (960,) and s.dtype == np.int16 and not s.any()
    f = silence(NARROWBAND)
    assert as_frame(f) is f
    with pytest.raises(ValueError):
        as_frame(np.zeros(161, dtype=np.int16))
    with pytest.raises(TypeError):
        as_frame(np.zeros(160, dtype=np.float32))


def test_float_conversion_round_trips_and_clips() -> None:
    x = np.arange(-32768, 32768, dtype=np.int16)
    f = int16_to_float(x)
    assert f.dtype == np.float32 and f.min() == -1.0 and f.max() < 1.0
    np.testing.assert_array_equal(float_to_int16(f), x)
    np.testing.assert_array_equal(float_to_int16([-2.0, 1.0, 1.5, 0.5]), np.array([-32768, 32767, 32767, 16384]))
