"""The original's architecture, for the benchmark to measure beside ours: an HTTP endpoint that
hands each call to Celery over Redis, and a Celery worker whose task dials nothing.

`POST /voice/call` validates the three fields and calls `apply_async` (a sync view on the thread
pool, as the original's Flask view was), answering 202 with the document's body; the worker's task
counts itself done in Redis (`peer:done`), which is how the runner times the worker's throughput.
Results go to the Redis backend, as the original's `result_backend` did. Durability is Redis's: a
queued task survives a worker crash, but not Redis losing what it had not yet snapshotted.

    PEER_REDIS_URL=redis://127.0.0.1:6379/0 uvicorn benchmarks.voice_api.celery_peer:app
    PEER_REDIS_URL=... celery -A benchmarks.voice_api.celery_peer:celery worker -c 20
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse

BROKER = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
celery = Celery("voice_peer", broker=BROKER, backend=BROKER)
celery.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)
_redis = redis.Redis.from_url(BROKER)


@celery.task(name="make_call")
def make_call(call_id: str, to_number: str, from_number: str, text: str) -> dict[str, str]:
    """Dial nothing: the queueing machinery is what is measured."""
    _redis.incr("peer:done")
    return {"call_id": call_id, "status": "completed"}


app = FastAPI()


@app.post("/voice/call", status_code=202)
def voice_call(body: dict[str, Any] = Body(...)) -> JSONResponse:
    required = ["ToNumber", "FromNumber", "Text"]
    missing = [f for f in required if not body.get(f)]
    if missing:
        return JSONResponse({"error": "Missing required fields", "missing": missing, "required": required}, 400)
    call_id, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    make_call.apply_async((call_id, body["ToNumber"], body["FromNumber"], body["Text"]), task_id=task_id)
    return JSONResponse(
        {
            "success": True,
            "call_id": call_id,
            "task_id": task_id,
            "status": "queued",
            "to_number": body["ToNumber"],
            "from_number": body["FromNumber"],
            "timestamp": datetime.now(UTC).isoformat(),
            "estimated_processing_time": "30-60 seconds",
        },
        202,
    )
