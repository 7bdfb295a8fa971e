"""Which unanswered attempts are tried again, and after how long.

Busy and no-answer are retried by count; a failure only when it looks transient (no response, 408,
5xx: the trunk or the network had a bad moment), never a 4xx/6xx that will say the same again.
The wait doubles per attempt from the configured base, capped, so a busy line is not hammered.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxswitch.jobs.states import JobState

TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    busy: int = 2
    no_answer: int = 1
    failed: int = 1
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 600.0

    def retries_for(self, outcome: JobState, sip_status: int | None) -> int:
        if outcome is JobState.BUSY:
            return self.busy
        if outcome is JobState.NO_ANSWER:
            return self.no_answer
        if outcome is JobState.FAILED and (not sip_status or sip_status in TRANSIENT_STATUSES):
            return self.failed
        return 0

    def should_retry(self, outcome: JobState, sip_status: int | None, attempts: int) -> bool:
        """`attempts` is how many calls this job has placed so far, the one that just ended included."""
        return attempts <= self.retries_for(outcome, sip_status)

    def delay(self, attempts: int) -> float:
        return min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1))


def outcome_for_status(status: int | None) -> JobState:
    """An attempt's end from the SIP status that refused it (dial.py's classification)."""
    if status in (486, 600):
        return JobState.BUSY
    if status in (None, 0, 408, 480, 487):
        return JobState.NO_ANSWER
    return JobState.FAILED
