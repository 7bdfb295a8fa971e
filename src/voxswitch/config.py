"""Typed configuration, read once from the environment and passed down (DESIGN house rule 7).

Every setting has a `VOXSWITCH_*` name. The names the five source documents use (`DATABASE_URL`,
`REDIS_URL`, `SIP_TRUNK_IP`, ...) are accepted too, with the same meaning, so a user migrating from
one of those systems keeps their environment file.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The SDES suites voxswitch.media.srtp implements (named here so reading the settings does not load
# libsrtp; a test keeps the two lists equal).
SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM")


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything an operator can set. Secrets are `SecretStr` so they never print by accident."""

    model_config = SettingsConfigDict(env_prefix="VOXSWITCH_", extra="ignore", populate_by_name=True)

    # --- runtime -------------------------------------------------------------------------------
    environment: str = "production"
    data_dir: Path = Field(default=Path("data"), validation_alias=_env("VOXSWITCH_DATA_DIR"))
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=1, le=65535)
    log_level: str = "INFO"
    log_buffer_lines: int = Field(default=10_000, ge=100)

    # --- store ---------------------------------------------------------------------------------
    database_url: str | None = Field(default=None, validation_alias=_env("VOXSWITCH_DATABASE_URL", "DATABASE_URL"))
    sqlite_synchronous: str = "FULL"
    redis_url: str | None = Field(default=None, validation_alias=_env("VOXSWITCH_REDIS_URL", "REDIS_URL"))

    # --- identity ------------------------------------------------------------------------------
    secret_key: SecretStr | None = None
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=60)
    session_cookie_name: str = "voxswitch_session"
    session_cookie_secure: bool = False
    allow_registration: bool = True
    default_can_call: bool = False
    default_call_limit_per_day: int = Field(default=100, ge=0)
    # argon2id cost; the defaults are argon2-cffi's RFC 9106 "low memory" profile.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65_536, ge=8)
    voice_api_auth: bool = True

    # OAuth2 / OpenID Connect provider for the softphone surface (`/api/v1/auth`), e.g. Nextcloud.
    oauth_issuer: str | None = None
    oauth_authorize_url: str | None = None
    oauth_token_url: str | None = None
    oauth_userinfo_url: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    oauth_redirect_uris: list[str] = Field(default_factory=list)

    # --- rate limits (per surface and group; `limits` notation) ---------------------------------
    rate_limits_enabled: bool = True
    rate_limits: dict[str, str] = Field(default_factory=dict)

    # --- SIP and media (contract ports from DESIGN.md) -----------------------------------------
    sip_enabled: bool = True
    sip_host: str = "0.0.0.0"
    sip_port: int = Field(default=5060, ge=0, le=65535)  # UDP and TCP; 0 picks a free port
    sip_tls_port: int = Field(default=5061, ge=0, le=65535)
    sip_advertised_host: str | None = None  # the address put in Via/Contact when bound to 0.0.0.0
    sip_realm: str = "voxswitch"
    # RFC 8760: one challenge per algorithm, most preferred first. Clients that read only the first
    # challenge and know only MD5 (SIPp 3.6, some desk phones) need ["MD5"] here.
    sip_digest_algorithms: list[str] = Field(default_factory=lambda: ["SHA-256", "MD5"])
    sip_tls_cert: Path | None = None  # PEM; without one a self-signed certificate is made once
    sip_tls_key: Path | None = None
    sip_trusted_sources: list[str] = Field(default_factory=list)  # trunk IPs allowed without digest
    sip_t1: float = Field(default=0.5, gt=0)
    sip_t2: float = Field(default=4.0, gt=0)
    sip_t4: float = Field(default=5.0, gt=0)
    sip_ban_after: int = Field(default=10, ge=1)
    sip_ban_seconds: float = Field(default=600.0, ge=1)
    sip_ban_window_seconds: float = Field(default=60.0, ge=1)
    rtp_port_min: int = Field(default=10_000, ge=1024, le=65535)
    rtp_port_max: int = Field(default=20_000, ge=1024, le=65535)
    media_timeout_seconds: float = Field(default=30.0, gt=0)  # no RTP for this long ends an answered call
    ring_timeout_seconds: float = Field(default=30.0, gt=0)  # how long `dial` rings before giving up
    gc_freeze: bool = True  # freeze the start-up heap out of the garbage collector (collector.py)
    # a full garbage collection this often instead of CPython's schedule (collector.py); 0: CPython's
    gc_full_every_seconds: float = Field(default=60.0, ge=0)
    timezone: str = "UTC"  # the PBX's local time: route time windows and daily call limits use it
    moh_file: Path | None = None  # a WAV for music on hold; the built-in chords otherwise
    # SRTP with SDES keys (RFC 4568), voxswitch.media.srtp_policy: "off" offers and takes plain RTP
    # only; "offer" offers RTP/SAVP and answers an offer as it comes; "require" refuses plain
    # offers with 488. `srtp_fallback`: after a 488/606 to our RTP/SAVP offer in "offer" mode, place
    # the call again with plain RTP (off by default: a refused SRTP offer fails the call).
    srtp: Literal["off", "offer", "require"] = "off"
    srtp_fallback: bool = False
    srtp_suites: list[str] = Field(default_factory=list)  # what we offer, best first; empty: the default list
    sip_trunk_ip: str | None = Field(default=None, validation_alias=_env("VOXSWITCH_SIP_TRUNK_IP", "SIP_TRUNK_IP"))
    sip_trunk_port: int = Field(
        default=5060, ge=1, le=65535, validation_alias=_env("VOXSWITCH_SIP_TRUNK_PORT", "SIP_TRUNK_PORT")
    )
    sip_username: str | None = Field(default=None, validation_alias=_env("VOXSWITCH_SIP_USERNAME", "SIP_USERNAME"))
    sip_password: SecretStr | None = Field(
        default=None, validation_alias=_env("VOXSWITCH_SIP_PASSWORD", "SIP_PASSWORD")
    )
    sip_trunk_transport: str = "UDP"
    sip_trunk_domain: str | None = None
    sip_trunk_register: bool = False
    sip_trunk_expires: int = Field(default=600, ge=60)

    # --- voice ---------------------------------------------------------------------------------
    tts_service: str = Field(default="espeak", validation_alias=_env("VOXSWITCH_TTS_SERVICE", "TTS_SERVICE"))
    google_tts_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("VOXSWITCH_GOOGLE_TTS_API_KEY", "GOOGLE_TTS_API_KEY")
    )
    azure_tts_key: SecretStr | None = Field(
        default=None, validation_alias=_env("VOXSWITCH_AZURE_TTS_KEY", "AZURE_TTS_KEY")
    )
    aws_access_key: SecretStr | None = Field(
        default=None, validation_alias=_env("VOXSWITCH_AWS_ACCESS_KEY", "AWS_ACCESS_KEY")
    )
    aws_secret_key: SecretStr | None = Field(
        default=None, validation_alias=_env("VOXSWITCH_AWS_SECRET_KEY", "AWS_SECRET_KEY")
    )
    aws_region: str = Field(default="us-east-1", validation_alias=_env("VOXSWITCH_AWS_REGION", "AWS_REGION"))
    azure_region: str = Field(default="eastus", validation_alias=_env("VOXSWITCH_AZURE_REGION", "AZURE_REGION"))

    # --- voice-call API jobs (voice-call-api.md) ------------------------------------------------
    # Workers run in the server process; `false` leaves queued calls for another node to place.
    voice_workers: bool = True
    voice_concurrency: int = Field(default=10, ge=1, le=1000)  # calls in flight at once, per node
    voice_calls_per_second: float = Field(default=5.0, gt=0)  # new INVITEs per second, per trunk
    voice_ring_seconds: float = Field(default=30.0, gt=0)  # a queued call rings this long
    voice_bulk_max: int = Field(default=1000, ge=1)
    voice_text_max_chars: int = Field(default=2000, ge=1)
    voice_default_from: str = "0000"  # the caller id `voxswitch call` uses without --from
    # retries after an attempt that was not answered, by how it ended; `failed` counts only
    # transient failures (408, 5xx, no response); an answered call is never placed again
    voice_retry_busy: int = Field(default=2, ge=0, le=20)
    voice_retry_no_answer: int = Field(default=1, ge=0, le=20)
    voice_retry_failed: int = Field(default=1, ge=0, le=20)
    voice_retry_backoff_seconds: float = Field(default=30.0, ge=0)  # first wait; doubles per attempt
    voice_retry_backoff_max_seconds: float = Field(default=600.0, ge=0)
    voice_lease_seconds: float = Field(default=15.0, ge=1)  # a worker's claim on a job, renewed
    voice_poll_seconds: float = Field(default=1.0, gt=0)  # how often idle workers look for work
    voice_drain_seconds: float = Field(default=5.0, ge=0)  # at shutdown, calls in flight may finish
    node_name: str | None = None  # this node among several sharing PostgreSQL; the host name by default
    webhook_secret: SecretStr | None = None  # signs StatusCallback POSTs; generated into the data dir if unset
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_allowed_hosts: list[str] = Field(default_factory=list)  # StatusCallback hosts; empty: any
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)

    # --- Twilio (DID sync, webhooks) -----------------------------------------------------------
    twilio_account_sid: str | None = Field(
        default=None, validation_alias=_env("VOXSWITCH_TWILIO_ACCOUNT_SID", "TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=_env("VOXSWITCH_TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN")
    )
    # Where the `twilio` library sends its REST requests (a local server in tests, a proxy maybe).
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {v!r} is not an IANA time zone (e.g. Europe/Paris)") from None
        return v

    @field_validator("srtp", mode="before")
    @classmethod
    def _srtp_mode(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("srtp_suites")
    @classmethod
    def _srtp_suites(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in SRTP_SUITES]
        if unknown:
            raise ValueError(f"unsupported SRTP suites {unknown}; supported: {', '.join(SRTP_SUITES)}")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return v

    @cached_property
    def sip_server_name(self) -> str:
        """What `/health` and `/api/info` call the SIP server: the trunk when one is set."""
        return self.sip_trunk_ip or "voxswitch"

    def masked(self) -> dict[str, Any]:
        """The settings as plain data with every secret replaced by `********` (for `config show`)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "********" if value.get_secret_value() else ""
            elif name in {"database_url", "redis_url"} and value:
                out[name] = mask_url_password(value)
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out


def mask_url_password(url: str) -> str:
    """`postgresql://u:secret@h/db` -> `postgresql://u:********@h/db`; URLs without a password pass."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    if ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:********@{host}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides (tests and the CLI use these)."""
    return Settings(**overrides)
