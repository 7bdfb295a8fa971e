"""CDRs: the engine's `calls` rows as the PBX shows them, filtered by date, and counted by period.

Dates are the PBX's local dates (`VOXSWITCH_TIMEZONE`): `from_date=2024-01-01&to_date=2024-01-31`
covers both days whole; an ISO time (`2024-01-31T12:00:00+01:00`) is an exact, inclusive bound.
An admin sees every call; anyone else the calls they placed and the calls to their own devices.

`disposition` is GoSIP's word for how a call ended: answered, voicemail, missed, busy, blocked,
failed, or in_progress while it is up. In the statistics a call is `answered` when it was answered
and `failed` when it ended without being answered (busy, missed, refused, failed); the average
duration is over the answered calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select, true

from voxswitch.errors import VoxError
from voxswitch.services.identity import Principal
from voxswitch.services.validation import Problems
from voxswitch.store.database import Database
from voxswitch.store.models import ACTIVE_CALL_STATES, CallRecord, Device, Did

PERIODS = ("day", "week", "month")
# With no from_date, statistics cover this many periods back from to_date.
DEFAULT_SPAN = {"day": 30, "week": 12, "month": 12}
FIRST_YEAR, LAST_YEAR = 1971, 9998  # far from datetime's limits, whatever the zone and period


def disposition(record: CallRecord) -> str:
    if record.status in ACTIVE_CALL_STATES:
        return "in_progress"
    if record.app == "blocked":
        return "blocked"
    if record.answered_at is not None:
        return "voicemail" if record.app == "voicemail" else "answered"
    if record.status == "busy":
        return "busy"
    if record.status in ("no_answer", "cancelled"):
        return "missed"
    return "failed"


@dataclass(frozen=True)
class Cdr:
    record: CallRecord
    did_id: int | None
    disposition: str


@dataclass
class Bucket:
    start: date
    count: int = 0
    answered: int = 0
    failed: int = 0
    total_duration: int = 0

    @property
    def average_duration(self) -> float:
        return round(self.total_duration / self.answered, 1) if self.answered else 0.0


@dataclass
class Stats:
    period: str
    from_time: datetime
    to_time: datetime
    timezone: str
    totals: Bucket
    buckets: list[Bucket] = field(default_factory=list)


def parse_bound(problems: Problems, name: str, text: str | None, zone: ZoneInfo, *, end: bool) -> datetime | None:
    """A date (the whole local day counts) or an ISO time; the end bound of a date is the next
    midnight, exclusive, which the query treats so."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if not FIRST_YEAR <= day.year <= LAST_YEAR:
                return _in_range(problems, name, text, datetime(day.year, 1, 1, tzinfo=UTC))
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), zone).astimezone(UTC)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if not FIRST_YEAR <= when.year <= LAST_YEAR:
            return _in_range(problems, name, text, when.replace(tzinfo=UTC))
    except (ValueError, OverflowError):
        problems.add(name, "must be a date (2024-01-31) or an ISO time (2024-01-31T12:00:00Z)", text)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return _in_range(problems, name, text, when.astimezone(UTC) + (timedelta(microseconds=1) if end else timedelta(0)))


def _in_range(problems: Problems, name: str, text: str, when: datetime) -> datetime | None:
    if not FIRST_YEAR <= when.year <= LAST_YEAR:
        problems.add(name, f"must be within the years {FIRST_YEAR}-{LAST_YEAR}", text)
        return None
    return when


def period_start(local: datetime, period: str) -> date:
    day = local.date()
    if period == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    if period == "month":
        return day.replace(day=1)
    return day


class CdrService:
    def __init__(self, db: Database, timezone: str = "UTC") -> None:
        self.db = db
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone

    async def _visible(self, viewer: Principal) -> ColumnElement[bool] | None:
        """None for an admin (everything); else the calls the user placed or that reached their devices."""
        if viewer.is_admin:
            return None
        async with self.db.session() as s:
            names = list((await s.execute(select(Device.username).where(Device.user_id == viewer.user.id))).scalars())
        own: list[ColumnElement[bool]] = [CallRecord.user_id == viewer.user.id]
        if names:
            own += [CallRecord.to_number.in_(names), CallRecord.answered_by.in_(names)]
        return or_(*own)

    def range(self, from_date: str | None, to_date: str | None) -> tuple[datetime | None, datetime | None]:
        problems = Problems()
        start = parse_bound(problems, "from_date", from_date, self.zone, end=False)
        end = parse_bound(problems, "to_date", to_date, self.zone, end=True)
        if start is not None and end is not None and end <= start:
            problems.add("to_date", "must not be before from_date", to_date)
        problems.check()
        return start, end

    @staticmethod
    def _where(start: datetime | None, end: datetime | None, visible: ColumnElement[bool] | None) -> list[Any]:
        clauses: list[Any] = []
        if start is not None:
            clauses.append(CallRecord.created_at >= start)
        if end is not None:
            clauses.append(CallRecord.created_at < end)
        if visible is not None:
            clauses.append(visible)
        return clauses

    async def _with_dids(self, rows: Sequence[CallRecord]) -> list[Cdr]:
        numbers = {r.did for r in rows if r.did}
        ids: dict[str, int] = {}
        if numbers:
            async with self.db.session() as s:
                found = await s.execute(select(Did.phone_number, Did.id).where(Did.phone_number.in_(numbers)))
                ids = {number: ident for number, ident in found.all()}
        return [Cdr(r, ids.get(r.did) if r.did else None, disposition(r)) for r in rows]

    async def list_cdrs(
        self, viewer: Principal, *, from_date: str | None, to_date: str | None, limit: int, offset: int
    ) -> tuple[list[Cdr], int]:
        """Newest first."""
        start, end = self.range(from_date, to_date)
        where = and_(true(), *self._where(start, end, await self._visible(viewer)))
        async with self.db.session() as s:
            total = int((await s.execute(select(func.count()).select_from(CallRecord).where(where))).scalar_one())
            rows = (
                await s.execute(
                    select(CallRecord)
                    .where(where)
                    .order_by(CallRecord.created_at.desc(), CallRecord.id)
                    .limit(limit)
                    .offset(offset)
                )
            ).scalars()
            records = list(rows)
        return await self._with_dids(records), total

    async def get(self, viewer: Principal, cdr_id: str) -> Cdr:
        visible = await self._visible(viewer)
        query = select(CallRecord).where(CallRecord.id == cdr_id)
        if visible is not None:
            query = query.where(visible)
        async with self.db.session() as s:
            record = (await s.execute(query)).scalar_one_or_none()
        if record is None:
            raise VoxError.not_found("CDR")
        return (await self._with_dids([record]))[0]

    async def stats(
        self,
        viewer: Principal,
        *,
        period: str,
        from_date: str | None,
        to_date: str | None,
        now: datetime | None = None,
    ) -> Stats:
        if period not in PERIODS:
            raise VoxError.invalid("period", f"must be one of {', '.join(PERIODS)}", period)
        start, end = self.range(from_date, to_date)
        if end is None:
            end = now or datetime.now(UTC)
        if start is None:
            local_end = (end - timedelta(microseconds=1)).astimezone(self.zone)
            first = period_start(local_end, period)
            for _ in range(DEFAULT_SPAN[period] - 1):
                first = period_start(datetime.combine(first - timedelta(days=1), time(0), self.zone), period)
            start = datetime.combine(first, time(0), self.zone).astimezone(UTC)
        where = and_(true(), *self._where(start, end, await self._visible(viewer)))
        columns = (CallRecord.created_at, CallRecord.answered_at, CallRecord.status, CallRecord.duration_seconds)
        totals = Bucket(period_start(start.astimezone(self.zone), period))
        buckets: dict[date, Bucket] = {}
        async with self.db.session() as s:
            rows = (await s.execute(select(*columns).where(where))).all()
            for created_at, answered_at, status, duration in rows:
                key = period_start(created_at.astimezone(self.zone), period)
                bucket = buckets.setdefault(key, Bucket(key))
                for b in (bucket, totals):
                    b.count += 1
                    if answered_at is not None:
                        b.answered += 1
                        b.total_duration += duration or 0
                    elif status not in ACTIVE_CALL_STATES:
                        b.failed += 1
        return Stats(period, start, end, self.timezone, totals, [buckets[k] for k in sorted(buckets)])
