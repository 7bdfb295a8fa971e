"""SQLAlchemy 2.0 models. The schema itself is owned by the Alembic migrations beside this file.

Timestamps are stored as timezone-aware UTC. Identifiers users see are UUID strings, except where a
source document shows integers (the PBX's devices, DIDs and routes, added by later migrations).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back aware in UTC (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    """One identity for every surface: the agents API's users, the PBX's users, the softphone's."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    first_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    last_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), nullable=False, default="user")
    can_call: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    call_limit_per_day: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    privacy_consent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    external_subject: Mapped[str | None] = mapped_column(String(200), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AuthSession(Base):
    """A login: the family its refresh tokens rotate in, and the PBX's session cookie.

    Access tokens carry the session id, so revoking a session (logout, password change, refresh
    token reuse) ends every token issued from it at once.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    method: Mapped[str] = mapped_column(String(20), nullable=False)
    cookie_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(50))


class RefreshToken(Base):
    """One refresh token of a session. Used once; a second use revokes the whole session."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A machine client's key: stored as a SHA-256 of a 256-bit secret, shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SystemSetting(Base):
    """Operator settings changed at run time (first-run setup, PBX system config)."""

    __tablename__ = "system_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    secret: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class CallRecord(Base):
    """The one record every call leaves, whichever surface or route started it.

    Later layers add columns (legs, routes, quality); the status vocabulary is the engine's:
    initiated, ringing, answered, in_progress, on_hold, completed, failed, busy, no_answer, cancelled.
    """

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    direction: Mapped[str] = mapped_column(String(10), nullable=False)
    from_number: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    to_number: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="initiated")
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    surface: Mapped[str] = mapped_column(String(20), nullable=False, default="engine")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    hangup_cause: Mapped[str | None] = mapped_column(String(200))
    hangup_status: Mapped[int | None] = mapped_column(Integer)  # the SIP status that ended it, if any
    app: Mapped[str | None] = mapped_column(String(64))
    answered_by: Mapped[str | None] = mapped_column(String(64))
    mos: Mapped[float | None] = mapped_column()
    did: Mapped[str | None] = mapped_column(String(32))
    route_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_calls_status", "status"), Index("ix_calls_created_at", "created_at"))


class Device(Base):
    """A SIP account on our registrar (the PBX document's device). Only digest HA1s are kept."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    username: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    realm: Mapped[str] = mapped_column(String(200), nullable=False)
    ha1_md5: Mapped[str] = mapped_column(String(32), nullable=False)
    ha1_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    type: Mapped[str] = mapped_column(String(50), nullable=False, default="generic")
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    dnd: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # do not disturb: calls to it are refused
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class Registration(Base):
    """One registrar binding (RFC 3261 §10.3): an AOR's contact, until it expires."""

    __tablename__ = "registrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), nullable=False, index=True)
    aor: Mapped[str] = mapped_column(String(200), nullable=False)
    contact: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    q: Mapped[float | None] = mapped_column()
    call_id: Mapped[str] = mapped_column(String(255), nullable=False)
    cseq: Mapped[int] = mapped_column(Integer, nullable=False)
    source_host: Mapped[str] = mapped_column(String(64), nullable=False)
    source_port: Mapped[int] = mapped_column(Integer, nullable=False)
    transport: Mapped[str] = mapped_column(String(8), nullable=False)
    user_agent: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    instance_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (Index("ux_registrations_aor_contact", "aor", "contact", unique=True),)


class SipEvent(Base):
    """Registration and authentication events, bans included, for `/api/devices/{id}/events`."""

    __tablename__ = "sip_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"), index=True)
    username: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    source: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Recording(Base):
    """A recorded call or leg: a WAV file under the data directory."""

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    channels: Mapped[int] = mapped_column(Integer, nullable=False)
    sample_rate: Mapped[int] = mapped_column(Integer, nullable=False)
    duration_seconds: Mapped[float] = mapped_column(nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="call")  # call, voicemail, greeting
    did_id: Mapped[int | None] = mapped_column(ForeignKey("dids.id", ondelete="SET NULL"), index=True)
    caller: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Did(Base):
    """A phone number we answer (the PBX document's DID), from the trunk provider or typed in."""

    __tablename__ = "dids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    phone_number: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)  # E.164
    friendly_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    capabilities: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)  # "voice", "sms", "mms", "fax"
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="manual")  # manual, twilio
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)  # Twilio's PN... sid
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class CallRoute(Base):
    """How calls to a DID are handled: by priority, the first enabled route whose conditions hold.

    `conditions`: {"time_start": "09:00", "time_end": "17:00", "days": ["mon", ...],
    "caller_patterns": ["+1555*", ...]} (all optional; the time zone is the PBX's). `action`: forward,
    ring_group, external, app, voicemail, hangup; `action_data` holds its parameters
    (engine/pbx_routing.py documents each).
    """

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    did_id: Mapped[int] = mapped_column(ForeignKey("dids.id", ondelete="CASCADE"), nullable=False, index=True)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    conditions: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False, default=dict)
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    action_data: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class BlockedNumber(Base):
    """A caller refused before anything rings: an exact number, or a prefix ending in `*`."""

    __tablename__ = "blocklist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    phone_number: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    reason: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


ACTIVE_CALL_STATES = ("initiated", "ringing", "answered", "in_progress", "on_hold")


class Job(Base):
    """Durable work, committed with the request that asked for it (jobs/states.py: the machine).

    `kind` is what it is (`voice_call`); `payload` is its JSON; `owner`/`lease_until` are a
    worker's claim, renewed while it runs. Voice calls keep their numbers in columns for listing.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    task_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True, default=new_id)
    batch_id: Mapped[str | None] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(120), index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    to_number: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    from_number: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    payload: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the first attempt's dialling
    dialed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the latest attempt's
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[float | None] = mapped_column()
    error_message: Mapped[str | None] = mapped_column(Text)
    sip_status: Mapped[int | None] = mapped_column(Integer)
    attempt_call_id: Mapped[str | None] = mapped_column(String(36))  # the latest attempt's `calls` row

    __table_args__ = (
        Index("ix_jobs_claim", "kind", "state", "not_before"),
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_completed_at", "completed_at"),
    )


class WebhookDelivery(Base):
    """One StatusCallback POST owed: written with the job state it reports, retried until sent."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_job", "job_id", "id"),
    )
