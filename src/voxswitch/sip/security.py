"""Brute-force protection for SIP authentication, sans-I/O (the caller passes `now`).

Each source address has a sliding window of failed authentications. Past `throttle_after` failures
its requests are answered slowly (the caller delays by `delay_for`), past `ban_after` it is banned:
every request from it is dropped unanswered for `ban_seconds`, which costs an attacker the most and
us the least (no parsing of what follows, no challenge to compute). Bans are reported through
`on_ban` so they can be logged and shown by the PBX API; a success clears a source's failures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BanPolicy:
    window_seconds: float = 60.0
    throttle_after: int = 5
    ban_after: int = 10
    ban_seconds: float = 600.0
    max_delay: float = 2.0
    max_tracked: int = 100_000


@dataclass(frozen=True)
class Ban:
    source: str
    since: float
    until: float
    failures: int
    last_username: str | None


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    last_username: str | None = None


class AuthGuard:
    def __init__(self, policy: BanPolicy | None = None, on_ban: Callable[[Ban], None] | None = None) -> None:
        self.policy = policy or BanPolicy()
        self.on_ban = on_ban
        self._records: dict[str, _Record] = {}
        self.bans: dict[str, Ban] = {}

    def is_banned(self, source: str, now: float) -> bool:
        ban = self.bans.get(source)
        if ban is None:
            return False
        if ban.until <= now:
            del self.bans[source]
            return False
        return True

    def failed(self, source: str, now: float, username: str | None = None) -> Ban | None:
        """Record a failed authentication; returns the ban if this failure caused one."""
        p = self.policy
        record = self._records.get(source)
        if record is None:
            if len(self._records) >= p.max_tracked:  # forget the oldest-inserted source
                self._records.pop(next(iter(self._records)))
            record = self._records[source] = _Record()
        record.failures.append(now)
        record.last_username = username
        self._trim(record, now)
        if len(record.failures) >= p.ban_after and not self.is_banned(source, now):
            ban = Ban(source, now, now + p.ban_seconds, len(record.failures), username)
            self.bans[source] = ban
            record.failures.clear()
            if self.on_ban is not None:
                self.on_ban(ban)
            return ban
        return None

    def succeeded(self, source: str) -> None:
        self._records.pop(source, None)

    def delay_for(self, source: str, now: float) -> float:
        """How long to hold the answer to this source: nothing until it starts failing a lot."""
        record = self._records.get(source)
        if record is None:
            return 0.0
        self._trim(record, now)
        excess = len(record.failures) - self.policy.throttle_after
        return 0.0 if excess < 0 else min(self.policy.max_delay, 0.25 * 2**excess)

    def unban(self, source: str) -> bool:
        return self.bans.pop(source, None) is not None

    def _trim(self, record: _Record, now: float) -> None:
        horizon = now - self.policy.window_seconds
        while record.failures and record.failures[0] < horizon:
            record.failures.popleft()
