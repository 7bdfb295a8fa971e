"""pbx-api.md CDRs: one record per call (the engine's `calls` rows), in GoSIP's field names where it
has one (`from_number`, `to_number`, `started_at`, `duration`, `disposition`), plus the engine's own
(`status`, `hangup_cause`, `hangup_status`, `app`, `answered_by`, `mos`, `did`, `route_id`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from voxswitch.api.deps import CurrentUser, State
from voxswitch.api.pagination import Page, Paging
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.services.cdrs import Bucket, Cdr

router = APIRouter(prefix="/api", tags=[TAGS[Surface.PBX]])

CdrId = Annotated[str, Path(max_length=36, description="CDR id (the call's UUID)")]
DateBound = Query(max_length=40, description="a date (whole local day) or an ISO time")


class CdrOut(BaseModel):
    id: str
    direction: str = Field(description="inbound, outbound or internal")
    from_number: str
    to_number: str
    did: str | None = Field(description="the DID called (E.164), when a PBX route took the call")
    did_id: int | None
    route_id: int | None
    status: str = Field(description="the engine's final state: completed, failed, busy, no_answer, cancelled, ...")
    disposition: str = Field(description="answered, voicemail, missed, busy, blocked, failed, in_progress")
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration: int = Field(description="seconds from answer to end (0 if never answered)")
    hangup_cause: str | None
    hangup_status: int | None = Field(description="the SIP status that ended the call, if any")
    app: str | None = Field(description="what ran the call: a route action, an app, blocked, dnd, ...")
    answered_by: str | None
    mos: float | None = Field(description="worst leg's mean opinion score (E-model), if measured")

    @classmethod
    def of(cls, c: Cdr) -> CdrOut:
        r = c.record
        return cls(
            id=r.id,
            direction=r.direction,
            from_number=r.from_number,
            to_number=r.to_number,
            did=r.did,
            did_id=c.did_id,
            route_id=r.route_id,
            status=r.status,
            disposition=c.disposition,
            started_at=r.created_at,
            answered_at=r.answered_at,
            ended_at=r.ended_at,
            duration=r.duration_seconds or 0,
            hangup_cause=r.hangup_cause,
            hangup_status=r.hangup_status,
            app=r.app,
            answered_by=r.answered_by,
            mos=r.mos,
        )


class StatsRow(BaseModel):
    start: date = Field(description="first local day of the period")
    count: int
    answered: int
    failed: int = Field(description="ended without being answered")
    total_duration: int = Field(description="seconds, answered calls")
    average_duration: float = Field(description="seconds per answered call")

    @classmethod
    def of(cls, b: Bucket) -> StatsRow:
        return cls(
            start=b.start,
            count=b.count,
            answered=b.answered,
            failed=b.failed,
            total_duration=b.total_duration,
            average_duration=b.average_duration,
        )


class StatsOut(BaseModel):
    period: str
    from_time: datetime = Field(description="inclusive")
    to_time: datetime = Field(description="exclusive")
    timezone: str
    count: int
    answered: int
    failed: int
    total_duration: int
    average_duration: float
    data: list[StatsRow] = Field(description="one row per period that had calls, oldest first")


@router.get("/cdrs", response_model=Page[CdrOut])
async def list_cdrs(
    viewer: CurrentUser,
    state: State,
    paging: Paging,
    from_date: Annotated[str | None, DateBound] = None,
    to_date: Annotated[str | None, DateBound] = None,
) -> Page[CdrOut]:
    """Newest first. An admin sees every call, a user their own calls and calls to their devices."""
    cdrs, total = await state.cdrs.list_cdrs(
        viewer, from_date=from_date, to_date=to_date, limit=paging.limit, offset=paging.offset
    )
    return Page.of([CdrOut.of(c) for c in cdrs], total, paging)


@router.get("/cdrs/stats", response_model=StatsOut)
async def cdr_stats(
    viewer: CurrentUser,
    state: State,
    period: Annotated[Literal["day", "week", "month"], Query(description="bucket size")] = "day",
    from_date: Annotated[str | None, DateBound] = None,
    to_date: Annotated[str | None, DateBound] = None,
) -> StatsOut:
    """Count, answered, failed, total and average duration, per period (default: the last 30 days,
    12 weeks or 12 months)."""
    s = await state.cdrs.stats(viewer, period=period, from_date=from_date, to_date=to_date)
    t = s.totals
    return StatsOut(
        period=s.period,
        from_time=s.from_time,
        to_time=s.to_time,
        timezone=s.timezone,
        count=t.count,
        answered=t.answered,
        failed=t.failed,
        total_duration=t.total_duration,
        average_duration=t.average_duration,
        data=[StatsRow.of(b) for b in s.buckets],
    )


@router.get("/cdrs/{cdr_id}", response_model=CdrOut)
async def get_cdr(cdr_id: CdrId, viewer: CurrentUser, state: State) -> CdrOut:
    return CdrOut.of(await state.cdrs.get(viewer, cdr_id))
