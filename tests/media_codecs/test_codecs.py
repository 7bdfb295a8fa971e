"""G.711 bit-exactness (against audioop and checked-in vectors), L16 byte order, the registry, transcoding."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.support.throwaway import missing
from voxswitch.media import codecs
from voxswitch.media.codecs import (
    CodecSpec,
    CodecUnavailableError,
    G711Codec,
    L16Codec,
    Transcoder,
    UnknownCodecError,
    default_registry,
    transcode,
)
from voxswitch.media.frames import NARROWBAND, WIDEBAND

DATA = Path(__file__).parent / "data"
ALL_SAMPLES = np.arange(65536, dtype=np.uint16).view(np.int16)  # index i holds int16(i)
ALL_CODES = bytes(range(256))


def _audioop():  # type: ignore[no-untyped-def]
    """The stdlib reference G.711 (Python 3.11/3.12); its tables are also kept in data/ for 3.13."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            missing("the stdlib audioop module (Python 3.11 or 3.12)")
            raise
        return audioop


def _sine(rate: int, n: int, freq: float = 1000.0, amp: float = 12000.0) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.int16)


@pytest.mark.parametrize(("law", "ref_name"), [("ulaw", "lin2ulaw"), ("alaw", "lin2alaw")])
def test_g711_encode_matches_audioop_for_every_sample(law: str, ref_name: str) -> None:
    ours = getattr(codecs, f"{law}_encode")(ALL_SAMPLES)
    assert ours == getattr(_audioop(), ref_name)(ALL_SAMPLES.astype("<i2").tobytes(), 2)


@pytest.mark.parametrize(("law", "ref_name"), [("ulaw", "ulaw2lin"), ("alaw", "alaw2lin")])
def test_g711_decode_matches_audioop_for_every_code(law: str, ref_name: str) -> None:
    ours = getattr(codecs, f"{law}_decode")(ALL_CODES)
    ref = np.frombuffer(getattr(_audioop(), ref_name)(ALL_CODES, 2), dtype=np.int16)
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_matches_checked_in_vectors(law: str) -> None:
    assert getattr(codecs, f"{law}_encode")(ALL_SAMPLES) == (DATA / f"g711_{law}_encode.raw").read_bytes()
    expected = np.frombuffer((DATA / f"g711_{law}_decode.raw").read_bytes(), dtype="<i2")
    np.testing.assert_array_equal(getattr(codecs, f"{law}_decode")(ALL_CODES), expected)


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_g711_round_trip_error_is_within_half_a_quantisation_step(law: str) -> None:
    codec = G711Codec(law)
    decoded = codec.decode(codec.encode(ALL_SAMPLES)).astype(np.int32)
    x = ALL_SAMPLES.astype(np.int32)
    err = np.abs(decoded - x)
    # Logarithmic quantiser: the step grows with magnitude, about 1/16 of the segment (relative error < 7 %),
    # with an absolute floor in the smallest segments and the clip at the top of the µ-law range.
    assert np.all(err <= np.maximum(0.07 * np.abs(x), 64 if law == "PCMA" else 16) + (np.abs(x) > 32124) * 700)
    # Every code decodes and re-encodes to itself (apart from µ-law's negative zero 0x7F -> 0xFF).
    again = codec.encode(codec.decode(ALL_CODES))
    diffs = [i for i in range(256) if again[i] != i]
    assert diffs == ([0x7F] if law == "PCMU" else [])


def test_g711_codes_are_the_published_ones() -> None:
    # Spot values from G.711 Table 2: silence, full scale, sign; A-law even bits inverted (0x55).
    assert codecs.ulaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == bytes([0xFF, 0x7E, 0x80, 0x00])
    assert codecs.alaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == bytes([0xD5, 0x55, 0xAA, 0x2A])


def test_g711_batched_equals_frame_by_frame() -> None:
    codec = G711Codec("PCMU")
    signal = _sine(8000, 160 * 50)
    batched = codec.encode(signal)
    framed = b"".join(codec.encode(f) for f in signal.reshape(50, 160))
    assert batched == framed and len(batched) == 8000
    np.testing.assert_array_equal(
        codec.decode(batched), np.concatenate([codec.decode(framed[i : i + 160]) for i in range(0, 8000, 160)])
    )


def test_g711_rejects_non_int16() -> None:
    with pytest.raises(TypeError):
        G711Codec("PCMA").encode(np.zeros(160, dtype=np.float32))  # type: ignore[arg-type]


def test_l16_is_big_endian() -> None:
    codec = L16Codec(16000)
    frame = np.array([0x0102, -2, 0x7FFF, -0x8000], dtype=np.int16)
    payload = codec.encode(frame)
    assert payload == bytes([0x01, 0x02, 0xFF, 0xFE, 0x7F, 0xFF, 0x80, 0x00])
    decoded = codec.decode(payload)
    assert decoded.dtype == np.int16 and decoded.dtype.byteorder in "=|"
    np.testing.assert_array_equal(decoded, frame)
    with pytest.raises(ValueError):
        codec.decode(b"\x00\x01\x02")


def test_registry_keys_rates_and_payload_types() -> None:
    reg = default_registry()
    assert reg.get("pcmu", 8000).payload_type == 0
    assert reg.get("PCMA", 8000).payload_type == 8
    g722 = reg.get("G722", 8000)
    assert (g722.clock_rate, g722.sample_rate, g722.payload_type) == (8000, 16000, 9)
    assert reg.get("L16", 16000).sample_rate == 16000 and reg.get("L16", 16000).payload_type is None
    assert reg.get("OPUS", 48000).rtpmap == "opus/48000/2"
    assert reg.by_static_payload_type(9).name == "G722"
    assert ("pcmu", 8000) in reg and ("PCMU", 16000) not in reg
    with pytest.raises(UnknownCodecError):
        reg.get("PCMU", 16000)
    a, b = reg.create("PCMU", 8000), reg.create("PCMU", 8000)
    assert a is not b and isinstance(a, codecs.Codec)


def test_unavailable_codec_is_listed_but_cannot_be_created() -> None:
    spec = CodecSpec("G729", 8000, 8000, 18, None, "no G.729 library")
    reg = codecs.CodecRegistry([spec])
    assert not spec.available and reg.available() == []
    with pytest.raises(CodecUnavailableError, match=r"G729/8000: no G\.729 library"):
        reg.create("G729", 8000)


def _snr_db(ref: np.ndarray, out: np.ndarray) -> float:
    ref, out = ref.astype(np.float64), out.astype(np.float64)
    return 10 * np.log10(np.sum(ref**2) / max(np.sum((ref - out) ** 2), 1e-9))


def _best_aligned_snr(ref: np.ndarray, out: np.ndarray, max_lag: int = 80) -> float:
    n = len(ref) - max_lag
    return max(_snr_db(ref[: n - max_lag], out[lag : lag + n - max_lag]) for lag in range(max_lag))


def test_g722_round_trip_when_available() -> None:
    if importlib.util.find_spec("G722") is None:
        missing("the G722 binding (pip extra voxswitch[codecs])")
    codec = default_registry().create("G722", 8000)
    assert codec.sample_rate == 16000
    signal = _sine(16000, 320 * 25)
    payloads = [codec.encode(f) for f in signal.reshape(25, 320)]
    assert {len(p) for p in payloads} == {160}  # 64 kbit/s: 20 ms -> 160 bytes
    out = np.concatenate([codec.decode(p) for p in payloads])
    assert out.dtype == np.int16 and out.shape == signal.shape
    assert _best_aligned_snr(signal[1600:], out[1600:]) > 20


def test_opus_round_trip_when_available() -> None:
    spec = default_registry().get("opus", 48000)
    if not spec.available:
        missing(f"Opus ({spec.unavailable_reason}; pip extra voxswitch[codecs] and Debian libopus0)")
    codec = spec.create()
    signal = _sine(16000, 320 * 25, amp=8000)
    out = np.concatenate([codec.decode(codec.encode(f)) for f in signal.reshape(25, 320)])
    assert out.shape == signal.shape
    assert _best_aligned_snr(signal[3200:], out[3200:], max_lag=160) > 10


def test_transcode_same_codec_passes_bytes_through() -> None:
    reg = default_registry()
    payload = bytes(range(160))
    t = Transcoder(reg.create("PCMU", 8000), reg.create("pcmu", 8000))
    assert t.passthrough and t(payload) is payload


def test_transcode_pcmu_to_pcma_keeps_the_signal() -> None:
    reg = default_registry()
    pcmu, pcma = reg.create("PCMU", 8000), reg.create("PCMA", 8000)
    signal = _sine(8000, 160)
    out = pcma.decode(transcode(pcmu.encode(signal), pcmu, pcma))
    assert _snr_db(signal, out) > 30


def test_transcode_narrowband_to_wideband_resamples() -> None:
    reg = default_registry()
    pcmu, l16 = reg.create("PCMU", 8000), reg.create("L16", 16000)
    t = Transcoder(pcmu, l16)
    assert not t.passthrough
    signal = _sine(NARROWBAND.rate, 160 * 20)
    outs = [l16.decode(t(pcmu.encode(f))) for f in signal.reshape(20, 160)]
    assert {len(o) for o in outs} == {WIDEBAND.frame_samples}
    spectrum = np.abs(np.fft.rfft(np.concatenate(outs)[640:]))
    assert np.argmax(spectrum) * 16000 / (len(spectrum) * 2 - 2) == pytest.approx(1000, abs=10)
    with pytest.raises(ValueError, match="needs a resampler"):
        transcode(b"\xff" * 160, pcmu, l16)
