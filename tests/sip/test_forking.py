"""RFC 3261 §16.7 step 6: the response a forking element sends when no branch said 2xx."""

from __future__ import annotations

from voxswitch.sip.forking import best_response


def test_no_final_response_at_all_is_a_timeout() -> None:
    assert best_response([]) == (408, "Request Timeout")


def test_a_6xx_wins_over_any_lower_class() -> None:
    finals = [(480, "Temporarily Unavailable"), (603, "Decline"), (302, "Moved Temporarily"), (600, "Busy")]
    assert best_response(finals) == (603, "Decline")


def test_otherwise_the_lowest_class_in_arrival_order() -> None:
    assert best_response([(503, "Service Unavailable"), (408, "Request Timeout"), (486, "Busy Here")]) == (
        408,
        "Request Timeout",
    )
    assert best_response([(500, "Server Error"), (302, "Moved Temporarily")]) == (302, "Moved Temporarily")


def test_within_4xx_a_hint_for_resubmitting_comes_first() -> None:
    finals = [(408, "Request Timeout"), (486, "Busy Here"), (415, "Unsupported Media Type"), (407, "Proxy Auth")]
    assert best_response(finals) == (415, "Unsupported Media Type")
