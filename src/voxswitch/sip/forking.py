"""The final response a forking element sends back when no branch answered 2xx (RFC 3261 §16.7).

Sans-I/O: the caller runs the branches, passes each 2xx on at once (§16.7 step 5) and hands the
other final responses here once every branch has ended.
"""

from __future__ import annotations

from collections.abc import Sequence

#: §16.7 step 6: within 4xx, answers that tell the client how to resubmit come first.
RESUBMIT_HINTS = frozenset({401, 407, 415, 420, 484})


def best_response(finals: Sequence[tuple[int, str]]) -> tuple[int, str]:
    """The (status, reason) to send upstream from the branches' final non-2xx responses, in the
    order they arrived: any 6xx, else the lowest class, preferring resubmission hints in 4xx;
    with none at all, 408 (§16.7 step 6)."""
    if not finals:
        return 408, "Request Timeout"
    global_failures = [f for f in finals if f[0] >= 600]
    if global_failures:
        return global_failures[0]
    lowest = min(status // 100 for status, _ in finals)
    in_class = [f for f in finals if f[0] // 100 == lowest]
    hinted = [f for f in in_class if f[0] in RESUBMIT_HINTS]
    return (hinted or in_class)[0]
