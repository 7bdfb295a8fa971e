"""RFC 2782 SRV ordering (`order_srv`), without DNS: priority order and the weighted draw within a priority."""

from __future__ import annotations

import random
from collections import Counter
from typing import NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from voxswitch.sip.resolve import order_srv


class Srv(NamedTuple):
    priority: int
    weight: int
    target: str


class ScriptedRandom(random.Random):
    """Returns the scripted draws in turn and records the range asked for each."""

    def __init__(self, draws: list[int]) -> None:
        super().__init__(0)
        self.draws = list(draws)
        self.ranges: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.ranges.append((a, b))
        draw = self.draws.pop(0)
        assert a <= draw <= b
        return draw


def test_lower_priority_value_comes_first_whatever_the_weights() -> None:
    records = [Srv(20, 100, "backup"), Srv(10, 0, "primary"), Srv(30, 5, "last")]
    assert [r.target for r in order_srv(records, random.Random(1))] == ["primary", "backup", "last"]


def test_weighted_draw_takes_the_first_record_whose_running_sum_reaches_the_draw() -> None:
    # Weight 0 goes first: running sums zero=0, one=1, three=4; draws from 0..4 while a weight-0 record remains.
    records = [Srv(0, 1, "one"), Srv(0, 3, "three"), Srv(0, 0, "zero")]
    rng = ScriptedRandom([2, 0, 1])
    assert [r.target for r in order_srv(records, rng)] == ["three", "zero", "one"]
    # Once no weight-0 record is left, the draw starts at 1, so weights are exactly proportional.
    assert rng.ranges == [(0, 4), (0, 1), (1, 1)]


def test_draw_of_zero_picks_the_weight_zero_record() -> None:
    records = [Srv(0, 5, "heavy"), Srv(0, 0, "zero")]
    assert [r.target for r in order_srv(records, ScriptedRandom([0, 5]))] == ["zero", "heavy"]


def test_first_choice_is_proportional_to_weight_with_a_seeded_random() -> None:
    records = [Srv(0, 1, "a"), Srv(0, 3, "b")]
    rng = random.Random(2782)
    firsts = Counter(order_srv(records, rng)[0].target for _ in range(4000))
    assert 0.72 < firsts["b"] / 4000 < 0.78  # expected 3/4


def test_weight_zero_record_is_rarely_first_but_can_be() -> None:
    records = [Srv(0, 0, "zero"), Srv(0, 99, "busy")]
    rng = random.Random(5)
    firsts = Counter(order_srv(records, rng)[0].target for _ in range(5000))
    assert 0 < firsts["zero"] < 150  # expected 1/100 of the draws


def test_all_weights_zero_keeps_the_dns_order() -> None:
    records = [Srv(0, 0, "x"), Srv(0, 0, "y"), Srv(0, 0, "z")]
    assert [r.target for r in order_srv(records, random.Random(3))] == ["x", "y", "z"]


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10)), max_size=12),
    st.integers(0, 2**32),
)
def test_order_is_a_permutation_sorted_by_priority(pairs: list[tuple[int, int]], seed: int) -> None:
    records = [Srv(p, w, f"t{i}") for i, (p, w) in enumerate(pairs)]
    ordered = order_srv(records, random.Random(seed))
    assert sorted(ordered) == sorted(records)
    assert [r.priority for r in ordered] == sorted(r.priority for r in records)
