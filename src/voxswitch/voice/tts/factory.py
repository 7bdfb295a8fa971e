"""Builds the engine `TTS_SERVICE` names (espeak, google, azure, aws) from typed configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxswitch.voice.tts.base import TtsEngine, TtsError
from voxswitch.voice.tts.cache import CachedEngine, TtsCache
from voxswitch.voice.tts.cloud import AzureTtsEngine, GoogleTtsEngine, PollyTtsEngine
from voxswitch.voice.tts.espeak import EspeakEngine
from voxswitch.voice.tts.sigv4 import AwsCredentials

SERVICES = ("espeak", "google", "azure", "aws")


@dataclass(frozen=True)
class TtsConfig:
    """What the engines need. `from_settings` fills it from `voxswitch.config.Settings`.

    `base_url` overrides the cloud service's address (tests, proxies); `sample_rate` is the rate all
    engines deliver, 8000 by default because that is what G.711 calls carry.
    """

    google_api_key: str | None = None
    azure_key: str | None = None
    azure_region: str = "eastus"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    aws_region: str = "us-east-1"
    base_url: str | None = None
    sample_rate: int = 8000
    voice: str | None = None
    language: str | None = None
    timeout_seconds: float = 10.0
    cache_max_bytes: int = 256 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> TtsConfig:
        """Reads the documented keys; settings not (yet) in `Settings` are read if present, else defaulted."""

        def secret(name: str) -> str | None:
            value = getattr(settings, name, None)
            if value is None:
                return None
            return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)

        values: dict[str, Any] = {
            "google_api_key": secret("google_tts_api_key"),
            "azure_key": secret("azure_tts_key"),
            "aws_access_key_id": secret("aws_access_key"),
            "aws_secret_access_key": secret("aws_secret_key"),
        }
        for name in ("azure_region", "aws_region"):
            if getattr(settings, name, None):
                values[name] = getattr(settings, name)
        values.update(overrides)
        return cls(**values)


def create_engine(name: str, config: TtsConfig, cache_dir: Path | None = None) -> TtsEngine:
    """The engine for a `TTS_SERVICE` value, wrapped in a disk cache under `cache_dir` when given."""
    service = name.strip().lower()
    engine: TtsEngine
    if service == "espeak":
        engine = EspeakEngine(
            default_voice=config.voice, default_language=config.language or "en-us", output_rate=config.sample_rate
        )
    elif service == "google":
        engine = GoogleTtsEngine(
            config.google_api_key or "",
            sample_rate=config.sample_rate,
            default_voice=config.voice,
            default_language=config.language or "en-US",
            timeout=config.timeout_seconds,
            **({"base_url": config.base_url} if config.base_url else {}),
        )
    elif service == "azure":
        engine = AzureTtsEngine(
            config.azure_key or "",
            region=config.azure_region,
            base_url=config.base_url,
            sample_rate=config.sample_rate,
            default_voice=config.voice or "en-US-JennyNeural",
            default_language=config.language or "en-US",
            timeout=config.timeout_seconds,
        )
    elif service == "aws":
        creds = AwsCredentials(
            config.aws_access_key_id or "", config.aws_secret_access_key or "", config.aws_session_token
        )
        engine = PollyTtsEngine(
            creds,
            region=config.aws_region,
            base_url=config.base_url,
            sample_rate=config.sample_rate,
            default_voice=config.voice or "Joanna",
            timeout=config.timeout_seconds,
        )
    else:
        raise TtsError(service or "?", f"unknown TTS_SERVICE {name!r}; choose one of {', '.join(SERVICES)}")
    if cache_dir is None:
        return engine
    namespace = getattr(engine, "cache_tag", None) or f"{engine.name}:{config.voice}:{config.language}"
    return CachedEngine(engine, TtsCache(cache_dir, max_bytes=config.cache_max_bytes), namespace=namespace)
