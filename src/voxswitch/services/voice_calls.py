"""Placing text-to-speech calls (voice-call-api.md): validate, queue durably, report.

HTTP-free, so the API's `POST /voice/call` and `voxswitch call` are one implementation. A request
is accepted only once its job row is committed (jobs/store.py's group commit); the 202 then means
the call will be placed, whatever happens to this process next. A bulk request is validated as a
whole and its jobs commit in one transaction: all of them are queued, or none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from voxswitch.config import Settings
from voxswitch.engine.targets import DIALABLE, E164
from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.jobs.states import FINAL, LIVE, JobState
from voxswitch.jobs.store import JobStore
from voxswitch.jobs.voice import KIND, VoicePayload, iso, status_view
from voxswitch.store.models import new_id, utcnow

REQUIRED = ("ToNumber", "FromNumber", "Text")
OPTIONAL = ("Voice", "Language", "Repeat", "StatusCallback", "Record")
MAX_REPEAT = 10
_RING_GUESS = 5.0  # seconds from INVITE to answer, before any call has been measured
_WORDS_PER_SECOND = 2.6  # espeak-ng's default pace, roughly


@dataclass(frozen=True)
class NewCall:
    to_number: str
    from_number: str
    payload: VoicePayload


@dataclass(frozen=True)
class Accepted:
    call_id: str
    task_id: str
    to_number: str
    from_number: str
    created_at: datetime
    estimated_processing_time: str


@dataclass(frozen=True)
class BulkAccepted:
    call_ids: list[str]
    task_ids: list[str]
    batch_id: str
    created_at: datetime


def _missing(value: Any) -> bool:
    return value is None


class VoiceCallService:
    def __init__(self, store: JobStore, settings: Settings, wake: Callable[[], None] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.wake = wake or (lambda: None)
        self._stats_at = -math.inf
        self._backlog = 0
        self._recent: list[float] = []

    # validation ---------------------------------------------------------------------------------

    def _number(self, name: str, value: Any, where: str, problems: list[FieldProblem]) -> str:
        if not isinstance(value, str):
            problems.append(FieldProblem(where + name, "must be a string", value))
            return ""
        number = value.strip()
        if not (E164.match(number) or DIALABLE.match(number)):
            problems.append(
                FieldProblem(
                    where + name,
                    "must be an E.164 number (+ and up to 15 digits) or a dialable extension (2 to 20 of 0-9 * #)",
                    value,
                )
            )
        return number

    def parse(self, data: Any, where: str = "") -> tuple[NewCall | None, list[FieldProblem]]:
        """One call request from a JSON object; the problems name each field (`where` prefixes
        them: `calls.3.`). A missing field's problem says "is required"."""
        if not isinstance(data, Mapping):
            return None, [FieldProblem(where.rstrip(".") or "body", "must be a JSON object", None)]
        problems: list[FieldProblem] = [
            FieldProblem(where + name, "is required") for name in REQUIRED if _missing(data.get(name))
        ]
        to_number = from_number = text = ""
        if not _missing(data.get("ToNumber")):
            to_number = self._number("ToNumber", data["ToNumber"], where, problems)
        if not _missing(data.get("FromNumber")):
            from_number = self._number("FromNumber", data["FromNumber"], where, problems)
        if not _missing(data.get("Text")):
            raw = data["Text"]
            limit = self.settings.voice_text_max_chars
            if not isinstance(raw, str):
                problems.append(FieldProblem(where + "Text", "must be a string", raw))
            elif not raw.strip():
                problems.append(FieldProblem(where + "Text", "must not be empty", raw))
            elif len(raw) > limit:
                problems.append(FieldProblem(where + "Text", f"must be at most {limit} characters (got {len(raw)})"))
            else:
                text = raw.strip()
        voice = self._short_text(data, "Voice", 64, where, problems)
        language = self._short_text(data, "Language", 16, where, problems)
        repeat = data.get("Repeat", 1)
        if repeat is None:
            repeat = 1
        if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
            problems.append(FieldProblem(where + "Repeat", f"must be an integer from 1 to {MAX_REPEAT}", repeat))
            repeat = 1
        record = data.get("Record", False)
        if record is None:
            record = False
        if not isinstance(record, bool):
            problems.append(FieldProblem(where + "Record", "must be true or false", record))
        callback = self._callback(data.get("StatusCallback"), where, problems)
        if problems:
            return None, problems
        payload = VoicePayload(text, voice, language, repeat, bool(record), callback)
        return NewCall(to_number, from_number, payload), []

    @staticmethod
    def _short_text(
        data: Mapping[str, Any], name: str, limit: int, where: str, problems: list[FieldProblem]
    ) -> str | None:
        value = data.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            problems.append(
                FieldProblem(where + name, f"must be a non-empty string of at most {limit} characters", value)
            )
            return None
        return value.strip()

    def _callback(self, value: Any, where: str, problems: list[FieldProblem]) -> str | None:
        if value is None:
            return None
        name = where + "StatusCallback"
        if not isinstance(value, str) or len(value) > 2000:
            problems.append(FieldProblem(name, "must be an http(s) URL of at most 2000 characters", value))
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(FieldProblem(name, "must be an http(s) URL", value))
            return None
        allowed = self.settings.webhook_allowed_hosts
        if allowed and parts.hostname.lower() not in {h.lower() for h in allowed}:
            problems.append(FieldProblem(name, f"host {parts.hostname} is not an allowed webhook host", value))
            return None
        return value.strip()

    @staticmethod
    def _raise(problems: list[FieldProblem], required: list[str]) -> None:
        if all(p.message == "is required" for p in problems):
            raise VoxError(ErrorKind.MISSING_FIELDS, "Missing required fields", problems, required=required)
        names = ", ".join(dict.fromkeys(p.field for p in problems))
        raise VoxError(ErrorKind.VALIDATION, f"Invalid fields: {names}", problems)

    # queueing -----------------------------------------------------------------------------------

    def _row(self, call: NewCall, user_id: str | None, now: datetime, batch_id: str | None = None) -> dict[str, Any]:
        return {
            "id": new_id(),
            "kind": KIND,
            "task_id": new_id(),
            "batch_id": batch_id,
            "state": JobState.QUEUED.value,
            "attempts": 0,
            "not_before": now,
            "owner": None,
            "lease_until": None,
            "user_id": user_id,
            "to_number": call.to_number,
            "from_number": call.from_number,
            "payload": call.payload.dumps(),
            "created_at": now,
            "updated_at": now,
        }

    async def place(self, data: Any, user_id: str | None = None) -> Accepted:
        """Queue one call; returns once it is durable."""
        call, problems = self.parse(data)
        if call is None:
            self._raise(problems, list(REQUIRED))
        assert call is not None
        now = utcnow()
        row = self._row(call, user_id, now)
        await self.store.insert([row])
        self.wake()
        estimate = await self.estimate(call.payload)
        self._backlog += 1
        return Accepted(row["id"], row["task_id"], call.to_number, call.from_number, now, estimate)

    async def place_bulk(self, data: Any, user_id: str | None = None) -> BulkAccepted:
        """Queue every call of `{"calls": [...]}` in one transaction, or none (a 400 naming each
        bad entry's index and field)."""
        if not isinstance(data, Mapping):
            raise VoxError.invalid("body", "must be a JSON object")
        entries = data.get("calls")
        if entries is None:
            raise VoxError(
                ErrorKind.MISSING_FIELDS,
                "Missing required fields",
                [FieldProblem("calls", "is required")],
                required=["calls"],
            )
        limit = self.settings.voice_bulk_max
        if not isinstance(entries, list) or not 1 <= len(entries) <= limit:
            raise VoxError.invalid("calls", f"must be a list of 1 to {limit} calls")
        calls: list[NewCall] = []
        problems: list[FieldProblem] = []
        for i, entry in enumerate(entries):
            call, bad = self.parse(entry, f"calls.{i}.")
            problems += bad
            if call is not None:
                calls.append(call)
        if problems:
            self._raise(problems, [f"calls.N.{name}" for name in REQUIRED])
        now = utcnow()
        batch_id = new_id()
        rows = [self._row(call, user_id, now, batch_id) for call in calls]
        await self.store.insert(rows)
        self.wake()
        self._backlog += len(rows)
        return BulkAccepted([r["id"] for r in rows], [r["task_id"] for r in rows], batch_id, now)

    # reporting ----------------------------------------------------------------------------------

    async def status(self, call_id: str, *, user_id: str | None = None, admin: bool = True) -> dict[str, Any]:
        """The document's status body; 404 for an unknown id or another user's call."""
        job = await self.store.get(call_id)
        if job is None or job.kind != KIND or (not admin and job.user_id != user_id):
            raise VoxError(ErrorKind.NOT_FOUND, "Call not found", details=f"no call with id {call_id}")
        return status_view(job)

    async def _refresh(self) -> None:
        if time.monotonic() - self._stats_at < 2.0:
            return
        self._stats_at = time.monotonic()
        self._backlog, _ = await self.store.backlog()
        self._recent = await self.store.recent_attempt_seconds()

    async def estimate(self, payload: VoicePayload) -> str:
        """ "a-b seconds" until this call is done: the queue ahead of it, spread over the workers and
        the trunk's calls-per-second cap, plus a call's length (recent calls', or guessed from the
        text before any has finished)."""
        await self._refresh()
        speech = len(payload.text.split()) / _WORDS_PER_SECOND * payload.repeat + (payload.repeat - 1)
        own = sum(self._recent) / len(self._recent) if self._recent else _RING_GUESS + speech + 1.0
        ahead = self._backlog
        s = self.settings
        wait = max((ahead // s.voice_concurrency) * own, ahead / s.voice_calls_per_second)
        low = max(1, math.floor(wait + own * 0.8))
        high = max(low + 1, math.ceil(wait * 1.25 + own * 1.5 + 2))
        return f"{low}-{high} seconds"

    async def metrics(self) -> dict[str, Any]:
        """Counts by state, success rate and the queue, from the store."""
        counts = await self.store.counts()
        by = {s.public: 0 for s in JobState}
        for state, n in counts.items():
            by[JobState(state).public] += n
        pending = by["queued"]
        processing = sum(by[s.value] for s in LIVE)
        completed = by["completed"]
        failed = sum(by[s.value] for s in FINAL if s is not JobState.COMPLETED)
        backlog, oldest = await self.store.backlog()
        return {
            "total": sum(by.values()),
            "pending": pending,
            "processing": processing,
            "completed": completed,
            "failed": failed,
            "success_rate": round(completed / (completed + failed), 4) if completed + failed else 0.0,
            "by_status": by,
            "queue_depth": backlog,
            "oldest_unfinished_at": iso(oldest),
        }
