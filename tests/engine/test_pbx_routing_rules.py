"""The PBX's route decision on a fixed clock: time windows (overnight too), days, caller patterns,
priority order, disabled routes, and the DID forms trunks send."""

from __future__ import annotations

from datetime import datetime

import pytest

from voxswitch.engine.pbx_routing import RouteRule, choose, did_candidates, matches, number_matches, parse_hhmm

MON_10 = datetime(2026, 11, 30, 10, 0)  # a Monday
SAT_10 = datetime(2026, 12, 5, 10, 0)
MON_18 = datetime(2026, 11, 30, 18, 0)
TUE_02 = datetime(2026, 12, 1, 2, 0)
SAT_02 = datetime(2026, 12, 5, 2, 0)
BUSINESS = {"time_start": "09:00", "time_end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}


def test_business_hours_hold_on_a_weekday_morning_only() -> None:
    assert matches(BUSINESS, MON_10, "+15550001111")
    assert not matches(BUSINESS, MON_18, "+15550001111")
    assert not matches(BUSINESS, SAT_10, "+15550001111")
    assert not matches(BUSINESS, datetime(2026, 11, 30, 17, 0), "+1"), "the end minute is outside"
    assert matches(BUSINESS, datetime(2026, 11, 30, 16, 59), "+1")


def test_an_overnight_window_belongs_to_the_day_it_starts() -> None:
    night = {"time_start": "22:00", "time_end": "06:00", "days": ["mon"]}
    assert matches(night, datetime(2026, 11, 30, 23, 0), "x")  # Monday 23:00
    assert matches(night, TUE_02, "x")  # Tuesday 02:00 is Monday night
    assert not matches(night, SAT_02, "x")  # Saturday 02:00 is Friday night
    assert not matches(night, MON_10, "x")


def test_days_alone_and_caller_patterns() -> None:
    assert matches({"days": ["sat", "sun"]}, SAT_10, "x") and not matches({"days": ["sat"]}, MON_10, "x")
    vip = {"caller_patterns": ["+1555*", "+442071234567"]}
    assert matches(vip, MON_10, "+15550001111")
    assert matches(vip, MON_10, "00442071234567"), "00 is the same as +"
    assert not matches(vip, MON_10, "+16170001111")
    assert matches({}, MON_10, "anyone")


def test_the_first_matching_route_by_priority_wins_and_disabled_ones_are_skipped() -> None:
    rules = [
        RouteRule(1, "after hours", 2, {}, "voicemail", {}),
        RouteRule(2, "business hours", 1, BUSINESS, "forward", {"device_id": 1}),
        RouteRule(3, "vip", 0, {"caller_patterns": ["+1999*"]}, "forward", {"device_id": 2}, enabled=False),
    ]
    assert choose(rules, MON_10, "+15550001111").name == "business hours"
    assert choose(rules, MON_18, "+15550001111").name == "after hours"
    assert choose(rules, MON_10, "+19990000000").name == "business hours", "a disabled route never matches"
    assert choose([], MON_10, "x") is None


def test_number_patterns_and_did_forms() -> None:
    assert number_matches("+1900*", "+19005551234") and not number_matches("+1900*", "+18005551234")
    assert number_matches("+15551234567", "+15551234567") and not number_matches("+15551234567", "+155512345678")
    assert did_candidates("15551234567") == ["15551234567", "+15551234567"]
    assert did_candidates("+15551234567") == ["+15551234567", "15551234567"]
    assert "+15551234567" in did_candidates("0015551234567")


@pytest.mark.parametrize("bad", ["9:00", "24:00", "12:60", "noon", ""])
def test_times_must_be_hh_mm(bad: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_hhmm(bad)
