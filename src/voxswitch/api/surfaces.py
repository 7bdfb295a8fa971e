"""The five documented API surfaces and which paths belong to which (spec/README.md's table).

A request's surface decides the shape of its errors and its rate-limit groups.
"""

from __future__ import annotations

from enum import StrEnum


class Surface(StrEnum):
    VOICE = "voice"  # voice-call-api.md (SESPCLSwitch)
    CALLBOT = "callbot"  # callbot-api.md (PIC Prospect Incoming Callbot)
    SOFTPHONE = "softphone"  # softphone-api.md (SIPCall)
    AGENTS = "agents"  # agents-api.md (VoiceERA)
    PBX = "pbx"  # pbx-api.md (GoSIP)


# Longest, most specific prefixes first; the PBX owns the rest of `/api/*` and anything unlisted.
_PREFIXES: tuple[tuple[str, Surface], ...] = (
    ("/api/v1/", Surface.SOFTPHONE),
    ("/api/callbot/", Surface.CALLBOT),
    ("/api/logs/", Surface.CALLBOT),
    ("/api/test/", Surface.CALLBOT),
    ("/voice/", Surface.VOICE),
    ("/auth/", Surface.AGENTS),
    ("/agents", Surface.AGENTS),
    ("/campaigns", Surface.AGENTS),
    ("/call-logs", Surface.AGENTS),
    ("/call-recordings", Surface.AGENTS),
    ("/analytics/", Surface.AGENTS),
)
_EXACT: dict[str, Surface] = {
    "/status": Surface.CALLBOT,
    "/api/info": Surface.VOICE,
    "/api/metrics": Surface.VOICE,
    "/readiness": Surface.AGENTS,
    "/api/v1": Surface.SOFTPHONE,
}


def surface_for_path(path: str) -> Surface:
    exact = _EXACT.get(path)
    if exact is not None:
        return exact
    for prefix, surface in _PREFIXES:
        if path.startswith(prefix):
            return surface
    return Surface.PBX


TAGS = {
    Surface.VOICE: "voice-call (SESPCLSwitch)",
    Surface.CALLBOT: "callbot (PIC Prospect Incoming Callbot)",
    Surface.SOFTPHONE: "softphone (SIPCall)",
    Surface.AGENTS: "agents (VoiceERA)",
    Surface.PBX: "pbx (GoSIP)",
}
HEALTH_TAG = "health"
