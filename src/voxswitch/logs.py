"""Structured JSON logs with request and call ids, secrets masked, kept in a ring for the logs API.

Every record becomes one JSON object on stderr and one entry in `LogBuffer`, which serves the
callbot document's `/api/logs/latest` and fans out to `/api/logs/stream` subscribers.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
call_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|api[_-]?key|cookie|credential", re.I)
# `password=...`, `"token": "..."`, `Authorization: Bearer ...` / `Digest ...` (to the end of the line)
_SECRET_IN_TEXT = re.compile(
    r"""(?ix)
    (?P<key>(?<![a-z])(?:pass(?:word)?|secret|token|api[_-]?key|cookie|(?:proxy-)?authorization)(?![a-z]))
    (?P<sep>["']?\s*[:=]\s*["']?)
    (?P<val>(?:bearer|digest|basic)\s[^\r\n]*|[^\s"',;&]+)
    """
)
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "ctx_request_id", "ctx_call_id"}


def redact(text: str) -> str:
    return _SECRET_IN_TEXT.sub(lambda m: f"{m['key']}{m['sep']}********", text)


def _clean(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return "********"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    return value


def entry_from_record(record: logging.LogRecord) -> dict[str, Any]:
    """The record as the logs API shows it: timestamp, level, message, call_id, module, extras."""
    entry: dict[str, Any] = {
        "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
        "level": record.levelname,
        "message": redact(record.getMessage()),
        "call_id": getattr(record, "call_id", None) or getattr(record, "ctx_call_id", None) or call_id_var.get(),
        "request_id": getattr(record, "request_id", None)
        or getattr(record, "ctx_request_id", None)
        or request_id_var.get(),
        "module": record.module,
        "logger": record.name,
    }
    for key, value in vars(record).items():
        if key not in _RESERVED and key not in entry:
            entry[key] = _clean(key, value)
    if record.exc_info and record.exc_info[0] is not None:
        entry["exception"] = redact(logging.Formatter().formatException(record.exc_info))
    return entry


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(entry_from_record(record), default=str)


class LogBuffer(logging.Handler):
    """The last N entries in memory, plus live subscribers (one asyncio queue per WebSocket)."""

    def __init__(self, capacity: int = 10_000) -> None:
        super().__init__()
        self.entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = set()
        self._sub_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = entry_from_record(record)
        except Exception:  # a log call must never break the caller
            self.handleError(record)
            return
        self.entries.append(entry)
        with self._sub_lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(_offer, queue, entry)
            except RuntimeError:  # loop closed
                self.unsubscribe(queue)

    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        with self._sub_lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self._sub_lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not queue}

    def latest(self, lines: int, level: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
        """Newest-last entries, filtered by minimum level and by time."""
        floor = LEVELS.index(level) if level else 0
        since_text = since.astimezone(UTC).isoformat().replace("+00:00", "Z") if since else None
        picked = [
            e
            for e in list(self.entries)
            if LEVELS.index(e["level"]) >= floor and (since_text is None or e["timestamp"] >= since_text)
        ]
        return picked[-lines:] if lines else []


def _offer(queue: asyncio.Queue[dict[str, Any]], entry: dict[str, Any]) -> None:
    if queue.full():  # a slow reader loses its oldest lines, never blocks logging
        queue.get_nowait()
    queue.put_nowait(entry)


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Stamp the request and call ids on each record when it is made, not when it is formatted."""
    record = _base_factory(*args, **kwargs)
    record.ctx_request_id = request_id_var.get()
    record.ctx_call_id = call_id_var.get()
    return record


def configure_logging(level: str, buffer: LogBuffer) -> None:
    """Route the root logger (and uvicorn's) to JSON on stderr and to `buffer`."""
    logging.setLogRecordFactory(_record_with_context)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, LogBuffer) or getattr(handler, "_voxswitch", False):
            root.removeHandler(handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter())
    stream._voxswitch = True  # type: ignore[attr-defined]
    root.addHandler(stream)
    root.addHandler(buffer)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # our middleware logs requests
    for noisy in ("alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def call_context(call_id: str) -> Iterator[None]:
    token = call_id_var.set(call_id)
    try:
        yield
    finally:
        call_id_var.reset(token)
