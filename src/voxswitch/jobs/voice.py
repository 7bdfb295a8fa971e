"""The voice-call job kind: what its payload holds, the app its call runs, and how it reads back.

The view is the document's `GET /voice/status/{call_id}` body, and the same body is what a
StatusCallback receives, so a client parses one shape whichever way it learns of a change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from voxswitch.engine import builtin_apps
from voxswitch.engine.apps import CallContext
from voxswitch.jobs.states import JobState, task_status
from voxswitch.store.models import Job

KIND = "voice_call"


@dataclass(frozen=True)
class VoicePayload:
    """What a queued call says and how (the request's optional fields included)."""

    text: str
    voice: str | None = None
    language: str | None = None
    repeat: int = 1
    record: bool = False
    status_callback: str | None = None

    def dumps(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, False)}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> VoicePayload:
        data = json.loads(text or "{}")
        return cls(
            text=str(data.get("text", "")),
            voice=data.get("voice"),
            language=data.get("language"),
            repeat=int(data.get("repeat", 1)),
            record=bool(data.get("record", False)),
            status_callback=data.get("status_callback"),
        )

    def app_params(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "voice": self.voice,
            "language": self.language,
            "repeat": self.repeat,
            "record": self.record,
        }


async def voice_call(ctx: CallContext) -> None:
    """Speak the job's text when the callee answers (recording the callee when asked), hang up."""
    if ctx.params.get("record"):
        await ctx.answer()
        ctx.record_call(stereo=False)
    await builtin_apps.speak(ctx)


def iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


def status_view(job: Job) -> dict[str, Any]:
    """The document's status body for `job` (plus `attempts`, `task_id` and, when asked, the
    recording), as `GET /voice/status/{call_id}` and StatusCallback POSTs carry it."""
    payload = VoicePayload.loads(job.payload)
    state = JobState(job.state)
    view: dict[str, Any] = {
        "id": job.id,
        "task_id": job.task_id,
        "to_number": job.to_number,
        "from_number": job.from_number,
        "text": payload.text,
        "status": state.public,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "duration": job.duration,
        "task_status": task_status(state, job.attempts),
        "error_message": job.error_message,
        "attempts": job.attempts,
        "sip_status": job.sip_status,
    }
    return view
