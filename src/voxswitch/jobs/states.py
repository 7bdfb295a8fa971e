"""The voice-call job's state machine: the one place that decides what a job may become.

Theory of operation. A job is the durable form of a call request; every state below is a committed
row, so what a process knew before it died is exactly what the table says. The rule that matters is
*a job never places its call twice*, also across SIGKILL, and it rests on one ordering:

    queued ──claim──▶ claimed ──commit──▶ dialing ──then──▶ the INVITE is sent

- `claimed` means a worker owns the job (`owner`, `lease_until`) but has sent nothing. A job found
  `claimed` after a crash (its owner dead: the same node restarted, or the lease expired) is put
  back to `queued`: no INVITE can have left for it, so placing it later is not a duplicate.
- `dialing` is committed *before* the INVITE goes out. From here on the call may have reached the
  trunk, so a job found in `dialing`, `ringing` or `in_progress` with a dead owner is finished as
  `failed` with the reason ("interrupted ..."), never re-dialled: we cannot know whether the callee's
  phone rang, and a second ring is the duplicate this design exists to prevent.
- A retry (busy, no answer, a transient failure, by policy) is decided only by the worker that saw
  the attempt end: the engine reported a final call state, so the previous INVITE transaction is
  over. It moves the job back to `queued` with `not_before` in the future. A call that was answered
  is never retried.
- Every move is a conditional UPDATE (`WHERE state = :from AND owner = :me`): a worker whose claim
  was taken away (its lease expired while it stalled) changes nothing and stops.

States are what the document's users see (`queued` ... `no_answer`) plus `claimed`, which reads as
`queued` to them. `task_status` speaks Celery's vocabulary because migrating clients parse it.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    DIALING = "dialing"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"

    @property
    def final(self) -> bool:
        return self in FINAL

    @property
    def live(self) -> bool:
        """The INVITE may be out: a job in this state whose owner died is finished, not retried."""
        return self in LIVE

    @property
    def public(self) -> str:
        """The status users see: `claimed` is still `queued` to them."""
        return JobState.QUEUED.value if self is JobState.CLAIMED else self.value


J = JobState
FINAL = frozenset({J.COMPLETED, J.FAILED, J.BUSY, J.NO_ANSWER})
LIVE = frozenset({J.DIALING, J.RINGING, J.IN_PROGRESS})
UNANSWERED_ENDINGS = frozenset({J.FAILED, J.BUSY, J.NO_ANSWER})

# (from, to): every move a job can make, and why.
TRANSITIONS: dict[tuple[JobState, JobState], str] = {
    (J.QUEUED, J.CLAIMED): "a worker with a free slot claims it",
    (J.CLAIMED, J.QUEUED): "released before dialling (shutdown, or its owner died)",
    (J.CLAIMED, J.DIALING): "committed right before the INVITE is sent",
    (J.DIALING, J.RINGING): "the far end rings (180/183)",
    (J.DIALING, J.IN_PROGRESS): "answered without ringing first",
    (J.RINGING, J.IN_PROGRESS): "answered: the text is spoken",
    (J.IN_PROGRESS, J.COMPLETED): "spoken and hung up",
    (J.IN_PROGRESS, J.FAILED): "the answered call broke (media timeout, app error) or was interrupted",
    **{
        (a, b): "the attempt ended unanswered, no retry left"
        for a in (J.DIALING, J.RINGING)
        for b in UNANSWERED_ENDINGS
    },
    (J.DIALING, J.QUEUED): "the attempt ended unanswered; retried later by policy",
    (J.RINGING, J.QUEUED): "the attempt ended unanswered; retried later by policy",
}


class IllegalJobTransition(RuntimeError):
    pass


def check(old: JobState, new: JobState) -> None:
    """Raise unless `old -> new` is in the table."""
    if (old, new) not in TRANSITIONS:
        raise IllegalJobTransition(f"job: {old} -> {new}")


def task_status(state: JobState, attempts: int) -> str:
    """Celery's word for the job: PENDING, RETRY, STARTED, SUCCESS or FAILURE."""
    if state in (J.QUEUED, J.CLAIMED):
        return "RETRY" if attempts else "PENDING"
    if state in LIVE:
        return "STARTED"
    return "SUCCESS" if state is J.COMPLETED else "FAILURE"
