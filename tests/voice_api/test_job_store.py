"""The jobs store on SQLite and PostgreSQL: the transition table, claiming without duplicates,
conditional moves, recovery after a crash, and the group commit."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from voxswitch.jobs.policy import RetryPolicy
from voxswitch.jobs.states import FINAL, TRANSITIONS, IllegalJobTransition, JobState, check, task_status
from voxswitch.jobs.store import JobStore, NewDelivery
from voxswitch.store.database import Database, normalise_url
from voxswitch.store.migrate import upgrade
from voxswitch.store.models import CallRecord, Job, WebhookDelivery, new_id, utcnow

J = JobState


def row(**values: Any) -> dict[str, Any]:
    now = utcnow()
    base = {
        "id": new_id(),
        "kind": "voice_call",
        "task_id": new_id(),
        "batch_id": None,
        "state": "queued",
        "attempts": 0,
        "not_before": now,
        "owner": None,
        "lease_until": None,
        "user_id": None,
        "to_number": "+15551234567",
        "from_number": "12156",
        "payload": '{"text":"Hi."}',
        "created_at": now,
        "updated_at": now,
    }
    return {**base, **values}


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path) -> Any:
    db = Database(normalise_url(database_url, tmp_path))
    await upgrade(db)
    s = JobStore(db, "voice_call")
    yield s
    s.close()
    await db.dispose()


def test_the_table_never_leaves_a_final_state_and_never_redials_a_live_job() -> None:
    assert not [t for t in TRANSITIONS if t[0] in FINAL], "a final state has no way out"
    assert not [t for t in TRANSITIONS if t[0].live and t[1] in (J.CLAIMED, J.DIALING)]
    assert (J.IN_PROGRESS, J.QUEUED) not in TRANSITIONS, "an answered call is never retried"
    check(J.CLAIMED, J.DIALING)
    with pytest.raises(IllegalJobTransition):
        check(J.QUEUED, J.DIALING)  # dialling needs a claim first
    with pytest.raises(IllegalJobTransition):
        check(J.COMPLETED, J.QUEUED)
    assert [task_status(s, 0) for s in (J.QUEUED, J.DIALING, J.COMPLETED, J.BUSY)] == [
        "PENDING", "STARTED", "SUCCESS", "FAILURE"
    ]  # fmt: skip
    assert task_status(J.QUEUED, 1) == "RETRY" and J.CLAIMED.public == "queued"


def test_the_retry_policy() -> None:
    policy = RetryPolicy(busy=2, no_answer=1, failed=1, backoff_seconds=10, backoff_max_seconds=25)
    assert policy.should_retry(J.BUSY, 486, 1) and policy.should_retry(J.BUSY, 486, 2)
    assert not policy.should_retry(J.BUSY, 486, 3)
    assert policy.should_retry(J.FAILED, 503, 1) and not policy.should_retry(J.FAILED, 404, 1)
    assert [policy.delay(n) for n in (1, 2, 3)] == [10, 20, 25]


async def test_concurrent_claims_never_take_one_job_twice(
    store: JobStore, database_url: str | None, tmp_path: Path
) -> None:
    await store.insert([row() for _ in range(60)])
    other_db = Database(normalise_url(database_url, tmp_path))  # its own connections, as another node
    other = JobStore(other_db, "voice_call")
    try:
        results = await asyncio.gather(
            *(store.claim("node-a/1", 7, 30) for _ in range(5)), *(other.claim("node-b/1", 7, 30) for _ in range(5))
        )
    finally:
        other.close()
        await other_db.dispose()
    ids = [job.id for jobs in results for job in jobs]
    assert len(ids) == len(set(ids)) == 60
    assert {job.state for jobs in results for job in jobs} == {"claimed"}
    assert await store.claim("node-a/1", 10, 30) == []


async def test_a_move_is_conditional_and_its_webhook_commits_with_it(store: JobStore) -> None:
    await store.insert([row()])
    [job] = await store.claim("node-a/1", 1, 30)
    report = lambda j: [NewDelivery("http://127.0.0.1:9/hook", j.state)]  # noqa: E731
    assert not await store.move(job, J.DIALING, owner="node-b/1", report=report), "not its owner"
    assert job.state == "claimed", "a refused move leaves the object as it was"
    assert await store.move(job, J.DIALING, owner="node-a/1", report=report, attempts=1)
    async with store.db.session() as s:
        bodies = (await s.scalars(select(WebhookDelivery.body))).all()
        state = (await s.scalars(select(Job.state))).one()
    assert list(bodies) == ["dialing"] and state == "dialing"


async def test_recovery_requeues_what_was_never_sent_and_fails_what_may_have_rung(store: JobStore) -> None:
    past = utcnow() - timedelta(seconds=60)
    future = utcnow() + timedelta(seconds=60)
    rows = {
        "claimed_before": row(state="claimed", owner="node-a/old", lease_until=future),
        "dialing_before": row(state="dialing", owner="node-a/old", lease_until=future, attempts=1),
        "ringing_expired": row(state="ringing", owner="node-b/x", lease_until=past, attempts=1),
        "live_elsewhere": row(state="in_progress", owner="node-b/x", lease_until=future, attempts=1),
        "mine_now": row(state="dialing", owner="node-a/new", lease_until=past, attempts=1),
    }
    rows["dialing_before"]["attempt_call_id"] = rows["dialing_before"]["id"]
    await store.insert(list(rows.values()))
    async with store.db.session() as s:
        s.add(CallRecord(id=rows["dialing_before"]["id"], direction="outbound", status="ringing"))
        await s.commit()
    recovered = await store.recover(dead_owner_prefix="node-a/", alive="node-a/new")
    assert (recovered.requeued, recovered.interrupted) == (1, 2)
    states = {name: await store.get(r["id"]) for name, r in rows.items()}
    assert states["claimed_before"].state == "queued" and states["claimed_before"].owner is None
    for name in ("dialing_before", "ringing_expired"):
        job = states[name]
        assert job.state == "failed" and job.error_message.startswith("interrupted: the server stopped while")
        assert job.completed_at is not None
    assert states["live_elsewhere"].state == "in_progress", "a live owner's job is left alone"
    assert states["mine_now"].state == "dialing", "our own jobs are never recovered from under us"
    async with store.db.session() as s:
        call = await s.get(CallRecord, rows["dialing_before"]["id"])
    assert call is not None and (call.status, call.hangup_cause) == ("failed", "interrupted")


async def test_the_group_commit_keeps_every_request_and_isolates_a_bad_one(store: JobStore) -> None:
    good = [[row()] for _ in range(100)]
    duplicate = row()
    results = await asyncio.gather(
        *(store.insert(r) for r in good), store.insert([duplicate]), store.insert([dict(duplicate)]),
        return_exceptions=True,
    )  # fmt: skip
    assert sum(isinstance(r, Exception) for r in results) == 1, results[-2:]
    counts = await store.counts()
    assert counts == {"queued": 101}


async def test_webhooks_of_one_job_are_handed_out_in_order_one_at_a_time(store: JobStore) -> None:
    await store.insert([row(), row()])
    jobs = await store.claim("node-a/1", 2, 30)
    for job in jobs:
        report = lambda j: [NewDelivery("http://127.0.0.1:9/hook", j.state)]  # noqa: E731
        assert await store.move(job, J.DIALING, owner="node-a/1", report=report, attempts=1)
        assert await store.move(job, J.RINGING, owner="node-a/1", report=report)
    first = await store.due_deliveries(10, lease_seconds=60)
    assert sorted(d.body for d in first) == ["dialing", "dialing"], "one per job: its earliest"
    assert await store.due_deliveries(10, lease_seconds=60) == [], "held while being sent"
    await store.delivery_done(first[0].id, ok=True, error=None, retry_at=None)
    await store.delivery_done(first[1].id, ok=False, error="HTTP 500", retry_at=utcnow() - timedelta(seconds=1))
    second = await store.due_deliveries(10, lease_seconds=60)
    assert sorted((d.job_id == first[0].job_id, d.body) for d in second) == [(False, "dialing"), (True, "ringing")]
