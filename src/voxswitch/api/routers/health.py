"""Health, readiness and status: every probe the five documents name, answered from real checks."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from voxswitch.api.deps import State
from voxswitch.api.surfaces import HEALTH_TAG, TAGS, Surface, surface_for_path

router = APIRouter()


class Health(BaseModel):
    status: str
    timestamp: str
    version: str
    uptime_seconds: int
    active_calls: int
    sip_server: str
    tts_service: str


class Live(BaseModel):
    status: str
    uptime_seconds: int


class Ready(BaseModel):
    status: str
    checks: dict[str, str]


class Readiness(BaseModel):
    database: str
    storage: str
    cache: str


class Info(BaseModel):
    name: str
    version: str
    description: str
    endpoints: dict[str, str]
    configuration: dict[str, str]


class ServiceStatus(BaseModel):
    application: dict[str, str]
    services: dict[str, dict[str, str]]
    metrics: dict[str, float | int]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def _health(state: State, response: Response) -> Health:
    db_ok = await state.status.database_ok()
    active = await state.status.active_calls() if db_ok else 0
    if not db_ok:
        response.status_code = 503
    return Health(
        status="healthy" if db_ok else "unhealthy",
        timestamp=_now(),
        version=state.version,
        uptime_seconds=state.uptime_seconds,
        active_calls=active,
        sip_server=state.settings.sip_server_name,
        tts_service=state.settings.tts_service,
    )


@router.get("/health", tags=[HEALTH_TAG], response_model=Health, responses={503: {"model": Health}})
async def health(state: State, response: Response) -> Health:
    """Liveness and headline figures (the union of the voice-call, callbot and PBX documents' fields)."""
    return await _health(state, response)


@router.get("/api/health", tags=[HEALTH_TAG], response_model=Health, responses={503: {"model": Health}})
async def api_health(state: State, response: Response) -> Health:
    return await _health(state, response)


async def _checks(state: State) -> dict[str, str]:
    db, storage, cache = (
        await state.status.database_ok(),
        await state.status.storage_ok(),
        await state.status.cache_ok(),
    )
    return {name: "ok" if ok else "error" for name, ok in (("database", db), ("storage", storage), ("cache", cache))}


@router.get("/api/ready", tags=[HEALTH_TAG], response_model=Ready, responses={503: {"model": Ready}})
async def ready(state: State, response: Response) -> Ready:
    checks = await _checks(state)
    ok = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ok else 503
    return Ready(status="ready" if ok else "not_ready", checks=checks)


@router.get("/api/live", tags=[HEALTH_TAG], response_model=Live)
async def live(state: State) -> Live:
    return Live(status="alive", uptime_seconds=state.uptime_seconds)


@router.get("/readiness", tags=[TAGS[Surface.AGENTS]], response_model=Readiness, responses={503: {"model": Readiness}})
async def readiness(state: State, response: Response) -> Readiness:
    """The agents document's readiness: database, storage and cache each really exercised."""
    checks = await _checks(state)
    response.status_code = 200 if all(v == "ok" for v in checks.values()) else 503
    return Readiness(**checks)


@router.get("/status", tags=[TAGS[Surface.CALLBOT]], response_model=ServiceStatus)
async def status(state: State) -> ServiceStatus:
    """The callbot document's service status, with the integrations this deployment actually has."""
    s = state.settings
    db_ok = await state.status.database_ok()
    counts = await state.status.call_counts() if db_ok else None
    twilio = "configured" if s.twilio_account_sid and s.twilio_auth_token else "not_configured"
    return ServiceStatus(
        application={"status": "running", "version": state.version, "environment": s.environment},
        services={
            "database": {"status": "connected" if db_ok else "unavailable"},
            "twilio": {"status": twilio, "last_check": _now()},
            "tts": {"status": "available", "engine": s.tts_service},
            "sip_trunk": {"status": "configured" if s.sip_trunk_ip else "not_configured"},
        },
        metrics={
            "active_calls": counts.active if counts else 0,
            "total_calls_today": counts.today if counts else 0,
            "average_call_duration": round(counts.average_duration_today, 1) if counts else 0,
            "success_rate": round(counts.completed_today / counts.today, 4) if counts and counts.today else 0.0,
        },
    )


@router.get("/api/info", tags=[TAGS[Surface.VOICE]], response_model=Info)
async def info(state: State, request: Request) -> Info:
    """The voice-call document's API information, describing this deployment as it is running."""
    s = state.settings
    endpoints: dict[str, str] = {}
    for path, operations in request.app.openapi()["paths"].items():
        if path == "/health" or surface_for_path(path) is Surface.VOICE:
            for method, op in operations.items():
                endpoints[f"{method.upper()} {path}"] = op.get("summary", "")
    return Info(
        name="Voxswitch",
        version=state.version,
        description="Self-hosted voice platform: SIP PBX, voice-call API and voice agents",
        endpoints=endpoints,
        configuration={
            "sip_server": s.sip_server_name,
            "sip_port": str(s.sip_trunk_port),
            "sip_transport": s.sip_trunk_transport.upper(),
            "tts_service": s.tts_service,
            "voice_workers": f"{s.voice_concurrency} calls at once, {s.voice_calls_per_second:g}/s"
            if s.voice_workers
            else "off",
            "bulk_max": str(s.voice_bulk_max),
        },
    )
