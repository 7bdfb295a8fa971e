"""The cloud engines as real HTTP clients, each against a local server speaking that service's protocol.

The servers (tests/support/tts_servers.py) check credentials as the services do, including an
independent SigV4 verification for Polly, and answer with a 440 Hz tone in the requested format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from tests.support.http_server import serve_in_thread
from tests.support.tts_servers import TONE_SECONDS, ServiceLog, azure_app, google_app, polly_app
from tests.voice_tts.conftest import collect, dominant_hz, rms
from voxswitch.voice.tts import (
    AwsCredentials,
    AzureTtsEngine,
    GoogleTtsEngine,
    PollyTtsEngine,
    TtsConfig,
    TtsError,
    create_engine,
)

GOOGLE_KEY = "AIza-local-test-key"
AZURE_KEY = "0123456789abcdef0123456789abcdef"
AWS_KEY_ID, AWS_SECRET, AWS_REGION = "AKIDLOCALTEST", "local/secret+key", "eu-west-1"


@pytest.fixture(scope="module")
def google_server() -> Iterator[tuple[str, ServiceLog]]:
    app, log = google_app(GOOGLE_KEY)
    with serve_in_thread(app) as url:
        yield url, log


@pytest.fixture(scope="module")
def azure_server() -> Iterator[tuple[str, ServiceLog]]:
    app, log = azure_app(AZURE_KEY)
    with serve_in_thread(app) as url:
        yield url, log


@pytest.fixture(scope="module")
def polly_server() -> Iterator[tuple[str, ServiceLog]]:
    app, log = polly_app(AWS_KEY_ID, AWS_SECRET, AWS_REGION)
    with serve_in_thread(app) as url:
        yield url, log


def assert_is_the_tone(pcm: np.ndarray, rate: int) -> None:
    assert abs(pcm.size / rate - TONE_SECONDS) < 0.021  # only the last frame's padding added
    assert abs(dominant_hz(pcm[: int(rate * TONE_SECONDS)], rate) - 440) < 3
    assert 5000 < rms(pcm) < 6000  # 8000 peak sine: rms 5657


# --- Google ------------------------------------------------------------------------------------


async def test_google_client_against_local_google_protocol_server(google_server: tuple[str, ServiceLog]) -> None:
    url, log = google_server
    engine = GoogleTtsEngine(GOOGLE_KEY, base_url=url, sample_rate=16000)
    try:
        pcm = await collect(engine, "Hello from Voxswitch", voice="en-GB-Standard-A")
        assert_is_the_tone(pcm, 16000)
        body = log.requests[-1]["body"]
        assert body == {
            "input": {"text": "Hello from Voxswitch"},
            "voice": {"languageCode": "en-GB", "name": "en-GB-Standard-A"},
            "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": 16000},
        }
        assert [v.name for v in await engine.voices()] == ["en-US-Standard-C"]
    finally:
        await engine.aclose()


async def test_google_bad_api_key_is_a_tts_error(google_server: tuple[str, ServiceLog]) -> None:
    engine = GoogleTtsEngine("wrong", base_url=google_server[0])
    try:
        with pytest.raises(TtsError) as err:
            await collect(engine, "hello")
    finally:
        await engine.aclose()
    assert (err.value.engine, err.value.status) == ("google", 400)
    assert "API key not valid" in str(err.value)
    assert not err.value.retryable


@pytest.mark.parametrize(("text", "status"), [("__busy__", 429), ("__boom__", 500)])
async def test_google_service_failures_are_tts_errors(
    google_server: tuple[str, ServiceLog], text: str, status: int
) -> None:
    engine = GoogleTtsEngine(GOOGLE_KEY, base_url=google_server[0])
    try:
        with pytest.raises(TtsError) as err:
            await collect(engine, text)
    finally:
        await engine.aclose()
    assert err.value.status == status and err.value.retryable
    assert f"google TTS (HTTP {status})" in str(err.value)


async def test_google_timeout_is_a_tts_error(google_server: tuple[str, ServiceLog]) -> None:
    engine = GoogleTtsEngine(GOOGLE_KEY, base_url=google_server[0], timeout=0.2)
    try:
        with pytest.raises(TtsError, match="timed out") as err:
            await collect(engine, "__slow__")
    finally:
        await engine.aclose()
    assert err.value.status is None and err.value.retryable


# --- Azure -------------------------------------------------------------------------------------


async def test_azure_client_against_local_azure_protocol_server(azure_server: tuple[str, ServiceLog]) -> None:
    url, log = azure_server
    engine = AzureTtsEngine(AZURE_KEY, base_url=url)
    try:
        text = 'Tom & Jerry say <hello> to "O\'Brien"'
        pcm = await collect(engine, text)
        assert_is_the_tone(pcm, 8000)
        seen = log.requests[-1]
        assert seen["text"] == text  # escaped on the way out, parsed back intact by the server
        assert (seen["voice"], seen["lang"]) == ("en-US-JennyNeural", "en-US")
        assert seen["headers"]["x-microsoft-outputformat"] == "raw-8khz-16bit-mono-pcm"
        assert seen["headers"]["content-type"] == "application/ssml+xml"

        await collect(engine, "Guten Tag", voice="de-DE-KatjaNeural")
        assert (log.requests[-1]["voice"], log.requests[-1]["lang"]) == ("de-DE-KatjaNeural", "de-DE")
        assert [v.name for v in await engine.voices()] == ["en-US-JennyNeural"]
    finally:
        await engine.aclose()


async def test_azure_streams_before_the_body_ends(azure_server: tuple[str, ServiceLog]) -> None:
    engine = AzureTtsEngine(AZURE_KEY, base_url=azure_server[0], sample_rate=16000)
    try:
        assert_is_the_tone(await collect(engine, "hello"), 16000)  # 333-byte chunks: split samples rejoined
    finally:
        await engine.aclose()


async def test_azure_bad_subscription_key_is_a_tts_error(azure_server: tuple[str, ServiceLog]) -> None:
    engine = AzureTtsEngine("wrong", base_url=azure_server[0])
    try:
        with pytest.raises(TtsError) as err:
            await collect(engine, "hello")
    finally:
        await engine.aclose()
    assert (err.value.engine, err.value.status) == ("azure", 401)


def test_azure_default_address_uses_the_region() -> None:
    engine = AzureTtsEngine(AZURE_KEY, region="westeurope")
    assert engine._base == "https://westeurope.tts.speech.microsoft.com"


# --- Amazon Polly ------------------------------------------------------------------------------


def polly(
    url: str, secret: str = AWS_SECRET, key_id: str = AWS_KEY_ID, *, sample_rate: int = 8000, timeout: float = 5.0
) -> PollyTtsEngine:
    creds = AwsCredentials(key_id, secret)
    return PollyTtsEngine(creds, region=AWS_REGION, base_url=url, sample_rate=sample_rate, timeout=timeout)


async def test_polly_client_against_local_polly_protocol_server(polly_server: tuple[str, ServiceLog]) -> None:
    url, log = polly_server
    engine = polly(url)
    try:
        pcm = await collect(engine, "Hello from Voxswitch")
        assert_is_the_tone(pcm, 8000)
        seen = log.requests[-1]
        assert seen["body"] == {
            "Text": "Hello from Voxswitch",
            "OutputFormat": "pcm",
            "SampleRate": "8000",
            "VoiceId": "Joanna",
        }
        auth = seen["headers"]["authorization"]
        assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
        assert f"/{AWS_REGION}/polly/aws4_request" in unquote(auth)
        assert "SignedHeaders=content-type;host;x-amz-date," in auth

        await collect(engine, "Bonjour", language="fr-FR")
        assert log.requests[-1]["body"]["VoiceId"] == "Lea"
        assert log.requests[-1]["body"]["LanguageCode"] == "fr-FR"
        assert [v.name for v in await engine.voices()] == ["Joanna"]
    finally:
        await engine.aclose()


async def test_polly_at_16khz(polly_server: tuple[str, ServiceLog]) -> None:
    engine = polly(polly_server[0], sample_rate=16000)
    try:
        assert_is_the_tone(await collect(engine, "hello"), 16000)
    finally:
        await engine.aclose()


@pytest.mark.parametrize(
    ("key_id", "secret", "reason"),
    [
        (AWS_KEY_ID, "not-the-secret", "signature we calculated does not match"),
        ("AKIDUNKNOWN", AWS_SECRET, "security token included in the request is invalid"),
    ],
)
async def test_polly_bad_credentials_are_tts_errors(
    polly_server: tuple[str, ServiceLog], key_id: str, secret: str, reason: str
) -> None:
    engine = polly(polly_server[0], secret=secret, key_id=key_id)
    try:
        with pytest.raises(TtsError) as err:
            await collect(engine, "hello")
    finally:
        await engine.aclose()
    assert (err.value.engine, err.value.status) == ("aws", 403)
    assert reason in str(err.value)


async def test_polly_timeout_and_unreachable_are_tts_errors(polly_server: tuple[str, ServiceLog]) -> None:
    engine = polly(polly_server[0], timeout=0.2)
    try:
        with pytest.raises(TtsError, match="timed out"):
            await collect(engine, "__slow__")
    finally:
        await engine.aclose()
    engine = polly("http://127.0.0.1:9")  # discard port: nothing listens
    try:
        with pytest.raises(TtsError, match="cannot reach"):
            await collect(engine, "hello")
    finally:
        await engine.aclose()


# --- through the factory ------------------------------------------------------------------------


async def test_factory_builds_each_cloud_engine_for_its_local_server(
    google_server: tuple[str, ServiceLog],
    azure_server: tuple[str, ServiceLog],
    polly_server: tuple[str, ServiceLog],
    tmp_path: Path,
) -> None:
    configs = {
        "google": TtsConfig(google_api_key=GOOGLE_KEY, base_url=google_server[0]),
        "azure": TtsConfig(azure_key=AZURE_KEY, base_url=azure_server[0]),
        "aws": TtsConfig(
            aws_access_key_id=AWS_KEY_ID,
            aws_secret_access_key=AWS_SECRET,
            aws_region=AWS_REGION,
            base_url=polly_server[0],
        ),
    }
    for name, config in configs.items():
        engine = create_engine(name, config, tmp_path / name)
        try:
            assert engine.name == name and engine.sample_rate == 8000
            first = await collect(engine, "cached phrase")
            assert_is_the_tone(first, 8000)
            before = sum(len(s[1].requests) for s in (google_server, azure_server, polly_server))
            second = await collect(engine, "cached phrase")
            after = sum(len(s[1].requests) for s in (google_server, azure_server, polly_server))
            assert before == after, f"{name}: a cached phrase must not reach the service"
            assert (first == second).all()
        finally:
            await engine.aclose()
