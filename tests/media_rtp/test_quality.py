"""E-model MOS estimate (ITU-T G.107 simplified, G.113 Appendix I codec figures)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxswitch.media.quality import (
    G711,
    G711_PLC,
    delay_impairment,
    effective_equipment_impairment,
    estimate_mos,
    mos_from_r,
    r_factor,
)


def test_reference_points() -> None:
    assert r_factor(0.0, 0.0) == 93.2
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.005)
    assert mos_from_r(100) == 4.5 and mos_from_r(120) == 4.5
    assert mos_from_r(0) == 1.0 and mos_from_r(-5) == 1.0 and mos_from_r(3) == 1.0
    assert mos_from_r(50) == pytest.approx(2.58, abs=0.01)  # G.107 Figure B.1: R 50 ~ MOS 2.6
    assert mos_from_r(80) == pytest.approx(4.02, abs=0.01)


def test_impairments() -> None:
    assert delay_impairment(100) == pytest.approx(2.4)
    assert delay_impairment(277.3) == pytest.approx(0.024 * 277.3 + 11.0)  # the knee at 177.3 ms
    assert effective_equipment_impairment(0.01, G711) == pytest.approx(95 / 5.3)
    assert effective_equipment_impairment(0.01, G711_PLC) == pytest.approx(95 / 26.1)
    assert effective_equipment_impairment(0.0, G711) == 0.0


def test_clean_lan_call_rates_near_the_top() -> None:
    assert estimate_mos(0.0, 1.0, 2.0) == pytest.approx(4.40, abs=0.01)
    assert estimate_mos(0.05, 20, 300, G711_PLC) > estimate_mos(0.05, 20, 300, G711)
    assert estimate_mos(0.5, 200, 2000) == 1.0


fractions = st.floats(0, 1)
millis = st.floats(0, 2000)


@given(fractions, fractions, millis, millis)
def test_monotonic_in_loss_and_delay(l1: float, l2: float, d1: float, d2: float) -> None:
    lo, hi = sorted((l1, l2))
    assert estimate_mos(lo, 10, 50) >= estimate_mos(hi, 10, 50)
    lo_d, hi_d = sorted((d1, d2))
    assert estimate_mos(0.01, lo_d, 50) >= estimate_mos(0.01, hi_d, 50)
    assert estimate_mos(0.01, 10, lo_d) >= estimate_mos(0.01, 10, hi_d)
    assert 1.0 <= estimate_mos(hi, hi_d, hi_d) <= 4.5
