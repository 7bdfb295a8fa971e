"""Workers that place queued voice calls: in the server process, started and stopped with it.

One dispatcher claims due jobs while a slot is free (`voice_concurrency` calls at once per node),
each claimed job waits for its trunk's calls-per-second token, commits `dialing` and only then
asks the engine to place the call (states.py says why that order is the whole guarantee). The
engine's call states are mirrored onto the job as they happen; when the call ends the job is
finished, or queued again with a backoff when the policy retries that ending. A keeper renews
this node's leases and finishes jobs whose owner is gone (another node that died, or this node's
earlier life, which is looked for at start before anything is claimed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxswitch.engine.call import Call, CallState
from voxswitch.engine.targets import TargetError
from voxswitch.jobs.pacing import TrunkPacer
from voxswitch.jobs.policy import RetryPolicy, outcome_for_status
from voxswitch.jobs.states import UNANSWERED_ENDINGS, JobState
from voxswitch.jobs.store import JobStore, NewDelivery
from voxswitch.jobs.voice import VoicePayload, iso, status_view, voice_call
from voxswitch.store.models import Job, new_id, utcnow

if TYPE_CHECKING:
    from voxswitch.engine.runtime import Engine
    from voxswitch.jobs.webhooks import WebhookSender

log = logging.getLogger(__name__)

J = JobState
_ENGINE_OUTCOME = {
    CallState.COMPLETED: J.COMPLETED,
    CallState.BUSY: J.BUSY,
    CallState.NO_ANSWER: J.NO_ANSWER,
    CallState.FAILED: J.FAILED,
    CallState.CANCELLED: J.FAILED,
}


def default_node(data_dir: Path) -> str:
    """This node's name among several: the host, and which data directory (two servers on one
    host are two nodes). A restarted server has the same name, which is how it finds its jobs."""
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:8]
    return f"{socket.gethostname()[:80]}-{digest}"


@dataclass(frozen=True)
class WorkerConfig:
    node: str
    concurrency: int = 10
    calls_per_second: float = 5.0
    ring_seconds: float = 30.0
    lease_seconds: float = 15.0
    poll_seconds: float = 1.0
    drain_seconds: float = 5.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class _Ending:
    outcome: JobState
    status: int | None
    message: str | None
    call: Call | None = None


class VoiceWorker:
    def __init__(
        self, store: JobStore, engine: Engine, config: WorkerConfig, webhooks: WebhookSender | None = None
    ) -> None:
        self.store = store
        self.engine = engine
        self.config = config
        self.webhooks = webhooks
        self.owner = f"{config.node}/{secrets.token_hex(4)}"
        self.pacer = TrunkPacer(config.calls_per_second)
        self.running = False
        self.placed = 0  # INVITEs handed to the engine by this process
        self._jobs: dict[str, tuple[Job, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    # lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        recovered = await self.store.recover(dead_owner_prefix=f"{self.config.node}/", alive=self.owner)
        if recovered.requeued or recovered.interrupted:
            log.warning(
                "recovered jobs of an earlier run: %d queued again (never dialled), %d finished as interrupted",
                recovered.requeued,
                recovered.interrupted,
            )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._dispatch(), name="voice-dispatch"),
            loop.create_task(self._keep(), name="voice-leases"),
        ]
        self.running = True

    async def stop(self) -> None:
        """Claim nothing more, give calls in flight `drain_seconds` to end, then finish the rest."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        waiting = [t for job, t in self._jobs.values() if JobState(job.state) is J.CLAIMED]
        for task in waiting:  # nothing sent for these yet: back to the queue at once
            task.cancel()
        busy = [t for _, t in self._jobs.values()]
        if busy:
            await asyncio.wait(busy, timeout=self.config.drain_seconds)
        for _, task in list(self._jobs.values()):
            task.cancel()
        await asyncio.gather(*(t for _, t in list(self._jobs.values())), *busy, return_exceptions=True)
        self.running = False

    def wake(self) -> None:
        """New work was committed in this process: look now rather than at the next poll."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    # claiming -----------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.config.concurrency - len(self._jobs)
            claimed: list[Job] = []
            if free > 0:
                try:
                    claimed = await self.store.claim(self.owner, free, self.config.lease_seconds)
                except Exception:
                    log.exception("could not claim jobs")
            for job in claimed:
                task = asyncio.get_running_loop().create_task(self._run(job), name=f"voice-job-{job.id}")
                self._jobs[job.id] = (job, task)
                task.add_done_callback(lambda _t, job_id=job.id: self._done(job_id))
            if claimed and len(claimed) == free:
                continue  # the slots are full; the next pass waits for one to free up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)

    def _done(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._wake.set()

    async def _keep(self) -> None:
        """Renew our leases; finish jobs whose owner stopped renewing theirs."""
        interval = self.config.lease_seconds / 3
        tick = 0
        while True:
            await asyncio.sleep(interval)
            tick += 1
            try:
                if self._jobs:
                    await self.store.renew(self.owner, self.config.lease_seconds)
                if tick % 3 == 0:
                    recovered = await self.store.recover(alive=self.owner)
                    if recovered.requeued or recovered.interrupted:
                        log.warning(
                            "jobs of a node that stopped: %d queued again, %d finished as interrupted",
                            recovered.requeued,
                            recovered.interrupted,
                        )
                        self._wake.set()
            except Exception:
                log.exception("lease keeping failed")

    # one job ------------------------------------------------------------------------------------

    def _report(self, payload: VoicePayload) -> Any:
        if not payload.status_callback:
            return None
        url = payload.status_callback

        def report(job: Job) -> Iterable[NewDelivery]:
            body = {**status_view(job), "event": "status", "timestamp": iso(utcnow())}
            return [NewDelivery(url, json.dumps(body, separators=(",", ":")))]

        return report

    async def _move(self, job: Job, new: JobState, payload: VoicePayload, **values: Any) -> bool:
        moved = await self.store.move(job, new, owner=self.owner, report=self._report(payload), **values)
        if moved and payload.status_callback and self.webhooks is not None:
            self.webhooks.wake()
        if not moved:
            log.warning("job %s is no longer ours (wanted %s)", job.id, new, extra={"call_id": job.id})
        return moved

    async def _run(self, job: Job) -> None:
        payload = VoicePayload.loads(job.payload)
        try:
            calls, targets = self.engine.calls, self.engine.targets
            if calls is None or targets is None:
                raise RuntimeError("the call engine is not running")
            if not targets.is_device(job.to_number):
                await self.pacer.acquire("trunk")
            attempt = job.attempts + 1
            call_id = job.id if attempt == 1 else new_id()
            now = utcnow()
            dialing = await self._move(
                job,
                J.DIALING,
                payload,
                attempts=attempt,
                dialed_at=now,
                started_at=job.started_at or now,
                answered_at=None,
                attempt_call_id=call_id,
            )
            if not dialing:
                return
            # from here on the INVITE may reach the trunk: this job is never dialled again
            ending = await self._place(job, payload, call_id)
            await self._finish(job, payload, ending)
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(job, payload))
            raise
        except Exception as exc:
            log.exception("voice job failed", extra={"call_id": job.id})
            await self._abandon(job, payload, f"internal error: {type(exc).__name__}: {exc}")

    async def _place(self, job: Job, payload: VoicePayload, call_id: str) -> _Ending:
        assert self.engine.calls is not None
        call = Call(
            self.engine.db,
            direction="outbound",
            from_number=job.from_number,
            to_number=job.to_number,
            surface="voice",
            user_id=job.user_id,
            call_id=call_id,
        )
        states: asyncio.Queue[CallState] = asyncio.Queue()
        call.listeners.append(lambda _call, state: states.put_nowait(state))
        try:
            await self.engine.calls.originate(
                job.to_number,
                voice_call,
                caller_id=job.from_number or None,
                params=payload.app_params(),
                ring_for=self.config.ring_seconds,
                call=call,
            )
        except TargetError as exc:
            return _Ending(outcome_for_status(exc.status), exc.status, f"{exc.status} {exc}")
        self.placed += 1
        while True:
            state = await states.get()
            current = JobState(job.state)
            if state is CallState.RINGING and current is J.DIALING:
                if not await self._move(job, J.RINGING, payload):
                    return _Ending(J.FAILED, None, None, call)
            elif state in (CallState.ANSWERED, CallState.IN_PROGRESS) and current in (J.DIALING, J.RINGING):
                if not await self._move(job, J.IN_PROGRESS, payload, answered_at=call.answered_at or utcnow()):
                    return _Ending(J.FAILED, None, None, call)
            elif state.final:
                break
        outcome = _ENGINE_OUTCOME[call.state]
        status = call.hangup_status or None
        if outcome is J.COMPLETED:
            return _Ending(outcome, None, None, call)
        cause = call.hangup_cause or call.state.value
        if outcome is J.NO_ANSWER and cause == "no answer":
            cause = f"no answer after {self.config.ring_seconds:g} s of ringing"
        message = cause if status is None or cause.startswith(str(status)) else f"{status} {cause}"
        return _Ending(outcome, status, message, call)

    async def _finish(self, job: Job, payload: VoicePayload, ending: _Ending) -> None:
        current = JobState(job.state)
        if current.final or current not in (J.DIALING, J.RINGING, J.IN_PROGRESS):
            return  # not ours any more
        now = utcnow()
        outcome = ending.outcome
        if current is J.IN_PROGRESS and outcome is not J.COMPLETED:
            outcome = J.FAILED  # answered, then broke: never placed again
        if outcome is J.COMPLETED and current is not J.IN_PROGRESS:
            if not await self._move(job, J.IN_PROGRESS, payload, answered_at=now):
                return
        call = ending.call
        duration = None
        if call is not None and call.answered_at is not None:
            duration = round(((call.ended_at or now) - call.answered_at).total_seconds(), 2)
        if outcome in UNANSWERED_ENDINGS and current is not J.IN_PROGRESS:
            if self.config.policy.should_retry(outcome, ending.status, job.attempts):
                delay = self.config.policy.delay(job.attempts)
                await self._move(
                    job,
                    J.QUEUED,
                    payload,
                    not_before=now + timedelta(seconds=delay),
                    error_message=f"{ending.message}; attempt {job.attempts} {outcome}, retrying in {delay:g} s",
                    sip_status=ending.status,
                )
                return
        await self._move(
            job,
            outcome,
            payload,
            completed_at=now,
            duration=duration,
            error_message=ending.message if outcome is not J.COMPLETED else None,
            sip_status=ending.status,
        )

    async def _abandon(self, job: Job, payload: VoicePayload, reason: str | None = None) -> None:
        """This process stops working on `job` before its call ended: back to the queue if nothing
        was sent, else finished as failed with why (never dialled again)."""
        current = JobState(job.state)
        try:
            if current is J.CLAIMED:
                await self.store.move(job, J.QUEUED, owner=self.owner)
            elif current.live:
                why = reason or f"interrupted: the server shut down while the call was {current}"
                await self._move(job, J.FAILED, payload, completed_at=utcnow(), error_message=why)
        except Exception:
            log.exception("could not release job %s", job.id)

    # what /api/metrics shows --------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for job, _ in self._jobs.values():
            states[job.state] = states.get(job.state, 0) + 1
        return {
            "running": self.running,
            "node": self.owner,
            "concurrency": self.config.concurrency,
            "calls_per_second": self.config.calls_per_second,
            "in_flight": len(self._jobs),
            "in_flight_by_state": states,
            "placed": self.placed,
        }
