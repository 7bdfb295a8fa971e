"""Cloud TTS engines as plain HTTP clients: Google Cloud Text-to-Speech, Azure Speech, Amazon Polly.

Each asks the service for 16-bit linear PCM at the engine's `sample_rate` (8 kHz by default, the
telephony rate) and streams it out as 20 ms frames while the response body is still arriving (Google
answers with one JSON document, so it yields once that is read). Every client takes a `base_url`
so tests, proxies or sovereign clouds can point it elsewhere. Any non-2xx answer, timeout or
connection failure becomes a `TtsError` naming the engine and the HTTP status.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncGenerator, Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
import numpy as np

from voxswitch.voice.tts.base import Framer, PcmDecoder, TtsError, Voice
from voxswitch.voice.tts.resample import Resampler
from voxswitch.voice.tts.sigv4 import AwsCredentials, sign_headers

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _service_message(body: bytes) -> str:
    """The human part of an error body: Google's error.message, Polly's message, or the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300] or "no details"
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "Message"):
            if doc.get(key):
                return str(doc[key])
    return text[:300]


def _language_of(voice: str | None) -> str | None:
    """`en-US-JennyNeural` / `en-US-Standard-C` -> `en-US`."""
    if voice and voice.count("-") >= 2:
        lang, region = voice.split("-")[:2]
        return f"{lang}-{region}"
    return None


class _HttpEngine:
    """Shared plumbing: one pooled client, error mapping, body -> frames."""

    name = "cloud"
    supported_rates: tuple[int, ...] = (8000, 16000)

    def __init__(self, base_url: str, sample_rate: int, timeout: httpx.Timeout | float | None) -> None:
        if sample_rate not in self.supported_rates:
            raise TtsError(self.name, f"offers {', '.join(map(str, self.supported_rates))} Hz, not {sample_rate}")
        self._rate = sample_rate
        self._base = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT if timeout is None else timeout)

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def aclose(self) -> None:
        await self._client.aclose()

    def _fail(self, status: int | None, message: str) -> TtsError:
        return TtsError(self.name, message, status=status)

    async def _check(self, resp: httpx.Response) -> None:
        if resp.status_code >= 300:
            body = await resp.aread()
            raise self._fail(resp.status_code, _service_message(body))

    async def _stream_pcm(
        self, method: str, path: str, *, headers: Mapping[str, str], content: bytes
    ) -> AsyncGenerator[np.ndarray, None]:
        """Sends the request and yields frames from a raw little-endian PCM body as it arrives."""
        framer, decoder = Framer(self._rate), PcmDecoder()
        try:
            async with self._client.stream(method, self._base + path, headers=dict(headers), content=content) as resp:
                await self._check(resp)
                async for data in resp.aiter_bytes():
                    for frame in framer.push(decoder.push(data)):
                        yield frame
        except httpx.TimeoutException as exc:
            raise self._fail(None, f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise self._fail(None, f"cannot reach the service: {exc}") from exc
        if (tail := framer.flush()) is not None:
            yield tail

    async def _request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = await self._client.request(method, self._base + path, **kwargs)
        except httpx.TimeoutException as exc:
            raise self._fail(None, f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise self._fail(None, f"cannot reach the service: {exc}") from exc
        await self._check(resp)
        try:
            return resp.json()
        except ValueError as exc:
            raise self._fail(resp.status_code, "the answer is not JSON") from exc


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(int16 mono samples, rate) from a RIFF/WAVE file of 16-bit PCM; raw PCM passes through as-is."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, rate, channels, bits, fmt_seen = 12, 0, 1, 16, False
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if fmt not in (1, 0xFFFE) or bits != 16:
                raise ValueError(f"WAVE format {fmt} with {bits}-bit samples is not 16-bit PCM")
            fmt_seen = True
        elif cid == b"data":
            if not fmt_seen:
                raise ValueError("WAVE data before its fmt chunk")
            pcm = np.frombuffer(body[: len(body) & ~1], dtype="<i2").astype(np.int16)
            if channels > 1:
                pcm = pcm[: pcm.size - pcm.size % channels].reshape(-1, channels).mean(axis=1).astype(np.int16)
            return pcm, rate
        pos += 8 + size + (size & 1)
    raise ValueError("WAVE file without a data chunk")


class GoogleTtsEngine(_HttpEngine):
    """Google Cloud Text-to-Speech REST v1, `text:synthesize`, authenticated with an API key."""

    name = "google"
    supported_rates = (8000, 16000, 22050, 24000, 44100, 48000)

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://texttospeech.googleapis.com",
        sample_rate: int = 8000,
        default_language: str = "en-US",
        default_voice: str | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> None:
        if not api_key:
            raise TtsError("google", "GOOGLE_TTS_API_KEY is not set")
        super().__init__(base_url, sample_rate, timeout)
        self._key = api_key
        self._language = default_language
        self._voice = default_voice

    async def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        voice = voice or self._voice
        spec: dict[str, str] = {"languageCode": language or _language_of(voice) or self._language}
        if voice:
            spec["name"] = voice
        body = {
            "input": {"text": text},
            "voice": spec,
            "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": self._rate},
        }
        doc = await self._request_json("POST", "/v1/text:synthesize", params={"key": self._key}, json=body)
        try:
            pcm, rate = parse_wav(base64.b64decode(doc["audioContent"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise self._fail(200, f"unusable audioContent: {exc}") from exc
        if rate != self._rate:  # Google honours sampleRateHertz, but be safe if it ever does not
            r = Resampler(rate, self._rate)
            pcm = np.concatenate((r.process(pcm), r.flush()))
        framer = Framer(self._rate)
        for frame in framer.push(pcm):
            yield frame
        if (tail := framer.flush()) is not None:
            yield tail

    async def voices(self) -> list[Voice]:
        doc = await self._request_json("GET", "/v1/voices", params={"key": self._key})
        return [
            Voice(v["name"], tuple(v.get("languageCodes", ())), str(v.get("ssmlGender", "")).lower() or None)
            for v in doc.get("voices", [])
        ]


AZURE_FORMATS = {8000: "raw-8khz-16bit-mono-pcm", 16000: "raw-16khz-16bit-mono-pcm", 24000: "raw-24khz-16bit-mono-pcm"}


class AzureTtsEngine(_HttpEngine):
    """Azure AI Speech text-to-speech REST API (`/cognitiveservices/v1`, SSML in, raw PCM out)."""

    name = "azure"
    supported_rates = tuple(AZURE_FORMATS)

    def __init__(
        self,
        subscription_key: str,
        *,
        region: str = "eastus",
        base_url: str | None = None,
        sample_rate: int = 8000,
        default_voice: str = "en-US-JennyNeural",
        default_language: str = "en-US",
        timeout: httpx.Timeout | float | None = None,
    ) -> None:
        if not subscription_key:
            raise TtsError("azure", "AZURE_TTS_KEY is not set")
        super().__init__(base_url or f"https://{region}.tts.speech.microsoft.com", sample_rate, timeout)
        self._key = subscription_key
        self._voice = default_voice
        self._language = default_language

    def ssml(self, text: str, voice: str, language: str) -> str:
        """The SSML body; text is XML-escaped so `<`, `&` and quotes are spoken, not parsed."""
        return (
            f"<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xml:lang={quoteattr(language)}>"
            f"<voice name={quoteattr(voice)}>{escape(text)}</voice></speak>"
        )

    async def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        voice = voice or self._voice
        language = language or _language_of(voice) or self._language
        headers = {
            "Ocp-Apim-Subscription-Key": self._key,
            "Content-Type": "application/ssml+xml",
            "X-Microsoft-OutputFormat": AZURE_FORMATS[self._rate],
            "User-Agent": "voxswitch",
        }
        async for frame in self._stream_pcm(
            "POST", "/cognitiveservices/v1", headers=headers, content=self.ssml(text, voice, language).encode()
        ):
            yield frame

    async def voices(self) -> list[Voice]:
        doc = await self._request_json(
            "GET", "/cognitiveservices/voices/list", headers={"Ocp-Apim-Subscription-Key": self._key}
        )
        return [Voice(v["ShortName"], (v.get("Locale", ""),), str(v.get("Gender", "")).lower() or None) for v in doc]


POLLY_DEFAULT_VOICES = {"en-US": "Joanna", "en-GB": "Amy", "de-DE": "Vicki", "fr-FR": "Lea", "es-ES": "Lucia"}


class PollyTtsEngine(_HttpEngine):
    """Amazon Polly `SynthesizeSpeech` (REST-JSON, SigV4-signed), PCM output."""

    name = "aws"

    def __init__(
        self,
        credentials: AwsCredentials,
        *,
        region: str = "us-east-1",
        base_url: str | None = None,
        sample_rate: int = 8000,
        default_voice: str = "Joanna",
        polly_engine: str | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> None:
        if not credentials.access_key_id or not credentials.secret_access_key:
            raise TtsError("aws", "AWS_ACCESS_KEY and the secret access key are both needed")
        super().__init__(base_url or f"https://polly.{region}.amazonaws.com", sample_rate, timeout)
        self._credentials = credentials
        self._region = region
        self._voice = default_voice
        self._engine = polly_engine

    def _signed(self, method: str, path: str, body: bytes, extra: Mapping[str, str]) -> dict[str, str]:
        url = self._base + path
        return sign_headers(method, url, extra, body, self._credentials, region=self._region, service="polly")

    async def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        request: dict[str, str] = {
            "Text": text,
            "OutputFormat": "pcm",
            "SampleRate": str(self._rate),
            "VoiceId": voice or (POLLY_DEFAULT_VOICES.get(language, self._voice) if language else self._voice),
        }
        if language:
            request["LanguageCode"] = language
        if self._engine:
            request["Engine"] = self._engine
        body = json.dumps(request).encode()
        headers = self._signed("POST", "/v1/speech", body, {"Content-Type": "application/json"})
        async for frame in self._stream_pcm("POST", "/v1/speech", headers=headers, content=body):
            yield frame

    async def voices(self) -> list[Voice]:
        headers = self._signed("GET", "/v1/voices", b"", {})
        doc = await self._request_json("GET", "/v1/voices", headers=headers)
        out = []
        for v in doc.get("Voices", []):
            langs = (v.get("LanguageCode", ""), *v.get("AdditionalLanguageCodes", []))
            out.append(Voice(v["Id"], langs, str(v.get("Gender", "")).lower() or None))
        return out
