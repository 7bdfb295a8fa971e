"""Brute-force protection: throttle, then ban, then forgive; on a virtual clock."""

from __future__ import annotations

from voxswitch.sip.security import AuthGuard, Ban, BanPolicy


def test_failures_throttle_then_ban_then_expire() -> None:
    bans: list[Ban] = []
    guard = AuthGuard(BanPolicy(window_seconds=60, throttle_after=3, ban_after=5, ban_seconds=100), on_ban=bans.append)
    now = 1000.0
    for i in range(4):
        assert guard.failed("198.51.100.7", now + i, "1001") is None
    assert guard.delay_for("198.51.100.7", now + 4) > 0
    assert guard.delay_for("203.0.113.1", now + 4) == 0  # another source is unaffected
    ban = guard.failed("198.51.100.7", now + 5, "1001")
    assert ban is not None and bans == [ban] and ban.last_username == "1001"
    assert guard.is_banned("198.51.100.7", now + 50)
    assert not guard.is_banned("198.51.100.7", now + 106)  # expired
    assert guard.bans == {}


def test_failures_outside_the_window_are_forgotten_and_success_clears() -> None:
    guard = AuthGuard(BanPolicy(window_seconds=10, throttle_after=2, ban_after=3))
    guard.failed("a", 0)
    guard.failed("a", 1)
    assert guard.failed("a", 20) is None  # the first two fell out of the window
    guard.failed("a", 21)
    guard.succeeded("a")
    assert guard.delay_for("a", 22) == 0
    assert guard.failed("a", 23) is None


def test_tracking_is_bounded() -> None:
    guard = AuthGuard(BanPolicy(max_tracked=100))
    for i in range(1000):
        guard.failed(f"10.0.{i // 256}.{i % 256}", float(i))
    assert len(guard._records) <= 100
