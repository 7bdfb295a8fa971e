"""The package's public surface, the TTS_SERVICE factory, and the PCM helpers engines share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

import voxswitch.voice.tts as tts
from tests.voice_tts.conftest import collect, dominant_hz
from voxswitch.config import Settings
from voxswitch.voice.tts import (
    CachedEngine,
    EspeakEngine,
    Framer,
    Resampler,
    TtsConfig,
    TtsEngine,
    TtsError,
    create_engine,
    resample,
)
from voxswitch.voice.tts.cloud import parse_wav


def test_public_api_is_curated() -> None:
    assert sorted(tts.__all__) == sorted(
        [
            "FRAME_MS",
            "SERVICES",
            "AwsCredentials",
            "AzureTtsEngine",
            "CachedEngine",
            "EspeakEngine",
            "Framer",
            "GoogleTtsEngine",
            "PollyTtsEngine",
            "Resampler",
            "TtsCache",
            "TtsConfig",
            "TtsEngine",
            "TtsError",
            "Voice",
            "create_engine",
            "frame_samples",
            "resample",
        ]
    )
    assert tts.SERVICES == ("espeak", "google", "azure", "aws")  # the values TTS_SERVICE documents


async def test_factory_espeak_is_cached_and_telephony_rate(espeak: EspeakEngine, tmp_path: Path) -> None:
    engine = create_engine("espeak", TtsConfig(), tmp_path)
    assert isinstance(engine, CachedEngine) and isinstance(engine.engine, EspeakEngine)
    assert isinstance(engine, TtsEngine)
    assert (engine.name, engine.sample_rate) == ("espeak", 8000)
    pcm = await collect(engine, "hello world")
    assert 0.5 <= pcm.size / 8000 <= 3.0
    uncached = create_engine("ESPEAK", TtsConfig(sample_rate=16000))
    assert isinstance(uncached, EspeakEngine) and uncached.sample_rate == 16000


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("festival", TtsConfig(), "unknown TTS_SERVICE"),
        ("google", TtsConfig(), "GOOGLE_TTS_API_KEY"),
        ("azure", TtsConfig(), "AZURE_TTS_KEY"),
        ("aws", TtsConfig(aws_access_key_id="AKID"), "secret access key"),
        ("aws", TtsConfig(aws_access_key_id="AKID", aws_secret_access_key="s", sample_rate=24000), "24000"),
    ],
)
def test_factory_refuses_incomplete_configuration(name: str, config: TtsConfig, message: str) -> None:
    with pytest.raises(TtsError, match=message):
        create_engine(name, config)


def test_config_from_settings_reads_the_documented_keys() -> None:
    settings = Settings(
        tts_service="google",
        google_tts_api_key=SecretStr("g-key"),
        azure_tts_key=SecretStr("a-key"),
        aws_access_key=SecretStr("AKID"),
    )
    config = TtsConfig.from_settings(settings, aws_secret_access_key="s3cret", aws_region="eu-west-1")
    assert (config.google_api_key, config.azure_key, config.aws_access_key_id) == ("g-key", "a-key", "AKID")
    assert (config.aws_secret_access_key, config.aws_region) == ("s3cret", "eu-west-1")


def test_framer_cuts_exact_frames_and_pads_the_last() -> None:
    framer = Framer(8000)
    out = [*framer.push(np.arange(100, dtype=np.int16)), *framer.push(np.arange(250, dtype=np.int16))]
    assert [f.size for f in out] == [160, 160]
    tail = framer.flush()
    assert tail is not None and tail.size == 160 and tail[30:].sum() == 0
    assert framer.flush() is None


@pytest.mark.parametrize(("src", "dst"), [(22050, 8000), (22050, 16000), (24000, 8000), (8000, 16000)])
def test_streaming_resampler_matches_one_shot_and_keeps_the_tone(src: int, dst: int) -> None:
    t = np.arange(src) / src
    x = np.rint(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    whole = resample(x, src, dst)
    r = Resampler(src, dst)
    pieces = np.concatenate([r.process(c) for c in np.array_split(x, 37)] + [r.flush()])
    np.testing.assert_array_equal(whole, pieces)
    assert abs(whole.size - dst) < dst * 0.01
    assert abs(dominant_hz(whole[dst // 10 : -dst // 10], dst) - 440) < 3
    mid = whole[dst // 4 : 3 * dst // 4].astype(np.float64)
    assert abs(np.sqrt(np.mean(mid**2)) - 8000 / np.sqrt(2)) < 100


def test_resampler_rejects_what_telephony_cannot_carry() -> None:
    t = np.arange(22050) / 22050
    above_nyquist = np.rint(8000 * np.sin(2 * np.pi * 6000 * t)).astype(np.int16)
    out = resample(above_nyquist, 22050, 8000)[800:-800].astype(np.float64)
    assert np.sqrt(np.mean(out**2)) < 100  # 6 kHz does not fold back into the 8 kHz band


def test_parse_wav_reads_google_linear16() -> None:
    from tests.support.tts_servers import tone, wav_bytes

    pcm, rate = parse_wav(wav_bytes(tone(8000), 8000))
    assert rate == 8000
    np.testing.assert_array_equal(pcm, tone(8000))
    with pytest.raises(ValueError):
        parse_wav(b"not a wav file at all")
