"""Local stand-ins for the cloud TTS services, speaking each one's documented wire protocol.

They check what the real services check (API key, subscription key header, SigV4 signature,
recomputed here independently of the client's signer), validate the request body, and answer with
a known 440 Hz tone in the requested format and rate, so a test can tell the client decoded it right.
Magic texts trigger failures: `__slow__` (answers after 1.5 s), `__busy__` (429), `__boom__` (500).
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import hashlib
import hmac
import io
import re
import time
import wave
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TONE_HZ = 440.0
TONE_SECONDS = 0.6
TONE_AMPLITUDE = 8000


def tone(rate: int, seconds: float = TONE_SECONDS) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


async def _chunks(data: bytes, size: int = 333) -> AsyncIterator[bytes]:
    """Odd-sized chunks with a pause, so clients meet split samples and truly streamed bodies."""
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


@dataclass
class ServiceLog:
    """What the fake service received, for tests to inspect."""

    requests: list[dict[str, Any]] = field(default_factory=list)


async def _magic(text: str) -> Response | None:
    if "__slow__" in text:
        await asyncio.sleep(1.5)
    if "__busy__" in text:
        return JSONResponse({"error": {"code": 429, "message": "Quota exceeded"}}, status_code=429)
    if "__boom__" in text:
        return JSONResponse({"error": {"code": 500, "message": "Internal error"}}, status_code=500)
    return None


# --- Google Cloud Text-to-Speech v1 ----------------------------------------------------------------


def google_app(api_key: str) -> tuple[Starlette, ServiceLog]:
    """POST /v1/text:synthesize?key=...; JSON in, {"audioContent": base64 WAV} out. GET /v1/voices."""
    log = ServiceLog()

    def bad(status: int, message: str, code: str) -> JSONResponse:
        return JSONResponse({"error": {"code": status, "message": message, "status": code}}, status_code=status)

    async def synthesize(request: Request) -> Response:
        if request.query_params.get("key") != api_key:
            return bad(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT")
        try:
            body = await request.json()
            text = body["input"]["text"]
            if not body["voice"]["languageCode"]:
                raise KeyError("languageCode")
            config = body["audioConfig"]
        except (ValueError, KeyError, TypeError):
            return bad(400, "input.text, voice.languageCode and audioConfig are required", "INVALID_ARGUMENT")
        log.requests.append({"body": body, "headers": dict(request.headers)})
        if config.get("audioEncoding") != "LINEAR16":
            return bad(400, "this stand-in only speaks LINEAR16", "INVALID_ARGUMENT")
        if (magic := await _magic(text)) is not None:
            return magic
        rate = int(config.get("sampleRateHertz") or 24000)
        audio = base64.b64encode(wav_bytes(tone(rate), rate)).decode()
        return JSONResponse({"audioContent": audio})

    async def voices(request: Request) -> Response:
        if request.query_params.get("key") != api_key:
            return bad(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT")
        return JSONResponse(
            {"voices": [{"name": "en-US-Standard-C", "languageCodes": ["en-US"], "ssmlGender": "FEMALE"}]}
        )

    routes = [Route("/v1/text:synthesize", synthesize, methods=["POST"]), Route("/v1/voices", voices)]
    return Starlette(routes=routes), log


# --- Azure AI Speech REST ------------------------------------------------------------------------

AZURE_RATES = {"raw-8khz-16bit-mono-pcm": 8000, "raw-16khz-16bit-mono-pcm": 16000, "raw-24khz-16bit-mono-pcm": 24000}
_SSML_NS = "{http://www.w3.org/2001/10/synthesis}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def azure_app(subscription_key: str) -> tuple[Starlette, ServiceLog]:
    """POST /cognitiveservices/v1 with SSML and Ocp-Apim-Subscription-Key; raw PCM out. GET voices/list."""
    log = ServiceLog()

    async def synthesize(request: Request) -> Response:
        if request.headers.get("ocp-apim-subscription-key") != subscription_key:
            return Response(status_code=401)
        if request.headers.get("content-type", "").split(";")[0] != "application/ssml+xml":
            return Response("Content-Type must be application/ssml+xml", status_code=400)
        rate = AZURE_RATES.get(request.headers.get("x-microsoft-outputformat", ""))
        if rate is None:
            return Response("unsupported X-Microsoft-OutputFormat", status_code=400)
        try:
            root = ET.fromstring(await request.body())
        except ET.ParseError as exc:
            return Response(f"SSML does not parse: {exc}", status_code=400)
        voice = root.find(f"{_SSML_NS}voice")
        if voice is None:
            voice = root.find("voice")
        if root.tag.split("}")[-1] != "speak" or root.get("version") != "1.0" or voice is None:
            return Response("SSML needs <speak version='1.0'> with a <voice>", status_code=400)
        text = "".join(voice.itertext())
        log.requests.append(
            {"voice": voice.get("name"), "lang": root.get(_XML_LANG), "text": text, "headers": dict(request.headers)}
        )
        if (magic := await _magic(text)) is not None:
            return magic
        return StreamingResponse(_chunks(tone(rate).astype("<i2").tobytes()), media_type="audio/basic")

    async def voices(request: Request) -> Response:
        if request.headers.get("ocp-apim-subscription-key") != subscription_key:
            return Response(status_code=401)
        return JSONResponse([{"ShortName": "en-US-JennyNeural", "Locale": "en-US", "Gender": "Female"}])

    routes = [
        Route("/cognitiveservices/v1", synthesize, methods=["POST"]),
        Route("/cognitiveservices/voices/list", voices),
    ]
    return Starlette(routes=routes), log


# --- Amazon Polly (REST-JSON, SigV4) ---------------------------------------------------------------

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def _sigv4_expected(request: Request, body: bytes, signed: list[str], secret: str, scope: list[str]) -> str:
    """The signature AWS would compute for this request (an implementation separate from the client's)."""

    def enc(s: str) -> str:
        return quote(s, safe="-_.~")

    query = "&".join(sorted(f"{enc(k)}={enc(v)}" for k, v in parse_qsl(request.url.query, keep_blank_values=True)))
    headers = "".join(f"{h}:{' '.join(request.headers.get(h, '').split())}\n" for h in signed)
    creq = "\n".join(
        [
            request.method,
            quote(request.url.path, safe="/-_.~"),
            query,
            headers,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    amz_date = request.headers["x-amz-date"]
    sts = f"AWS4-HMAC-SHA256\n{amz_date}\n{'/'.join(scope)}/aws4_request\n{hashlib.sha256(creq.encode()).hexdigest()}"
    key = ("AWS4" + secret).encode()
    for part in [*scope, "aws4_request"]:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def polly_app(access_key_id: str, secret_access_key: str, region: str) -> tuple[Starlette, ServiceLog]:
    """POST /v1/speech (SynthesizeSpeech) and GET /v1/voices (DescribeVoices), SigV4 verified."""
    log = ServiceLog()

    def aws_error(status: int, kind: str, message: str) -> JSONResponse:
        return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": kind})

    async def authenticate(request: Request, body: bytes) -> Response | None:
        m = _AUTH_RE.match(request.headers.get("authorization", ""))
        amz_date = request.headers.get("x-amz-date", "")
        if m is None or not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
            return aws_error(403, "IncompleteSignatureException", "Authorization header or X-Amz-Date malformed")
        if m["akid"] != access_key_id:
            return aws_error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if m["region"] != region or m["service"] != "polly" or m["date"] != amz_date[:8]:
            return aws_error(403, "InvalidSignatureException", "Credential should be scoped correctly.")
        signed = m["signed"].split(";")
        if signed != sorted(signed) or not {"host", "x-amz-date"} <= set(signed):
            return aws_error(403, "InvalidSignatureException", "host and x-amz-date must be signed, sorted")
        when = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        if abs(time.time() - when) > 300:
            return aws_error(403, "InvalidSignatureException", "Signature expired")
        expected = _sigv4_expected(request, body, signed, secret_access_key, [m["date"], region, "polly"])
        if not hmac.compare_digest(expected, m["sig"]):
            return aws_error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None

    async def speech(request: Request) -> Response:
        body = await request.body()
        if (denied := await authenticate(request, body)) is not None:
            return denied
        try:
            doc = await request.json()
            text, fmt = doc["Text"], doc["OutputFormat"]
            if not doc["VoiceId"]:
                raise KeyError("VoiceId")
        except (ValueError, KeyError, TypeError):
            return aws_error(400, "ValidationException", "Text, OutputFormat and VoiceId are required")
        log.requests.append({"body": doc, "headers": dict(request.headers)})
        if fmt != "pcm" or doc.get("SampleRate", "16000") not in ("8000", "16000"):
            return aws_error(400, "InvalidSampleRateException", "pcm supports SampleRate 8000 and 16000")
        if (magic := await _magic(text)) is not None:
            return magic
        rate = int(doc.get("SampleRate", "16000"))
        return StreamingResponse(_chunks(tone(rate).astype("<i2").tobytes()), media_type="audio/pcm")

    async def voices(request: Request) -> Response:
        if (denied := await authenticate(request, await request.body())) is not None:
            return denied
        return JSONResponse({"Voices": [{"Id": "Joanna", "LanguageCode": "en-US", "Gender": "Female"}]})

    routes = [Route("/v1/speech", speech, methods=["POST"]), Route("/v1/voices", voices)]
    return Starlette(routes=routes), log


__all__ = ["ServiceLog", "azure_app", "google_app", "polly_app", "tone", "wav_bytes"]
