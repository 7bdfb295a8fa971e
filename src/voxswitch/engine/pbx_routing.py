"""The PBX's call routing: blocked callers, DIDs and their routes, do-not-disturb, and who may call out.

Order of decisions for an incoming call (issue #6):
1. A caller on the blocklist (an exact number, or a prefix ending in `*`) is refused (603 Decline)
   before anything rings; the call record says why.
2. A call to one of our DIDs runs the first enabled route of that DID, by priority, whose conditions
   hold at the PBX's local time (`time_start`-`time_end`, overnight windows allowed; `days`;
   `caller_patterns`). No route matching: the caller hears a clear announcement, never silence.
3. A call to a device in do-not-disturb is refused busy (486). A device calling out through the
   trunk needs its owner's `can_call` and stays under the owner's `call_limit_per_day` (a device
   with no owner is the admin's and may call).
4. Everything else: the engine's default routing (apps by name, devices, numbers via the trunk).

`matches` and `choose` are pure (the time comes in), so business hours are tested without waiting.
Route actions map to apps: forward and ring_group dial devices, external dials a number through the
trunk, app runs a registered app, voicemail plays a greeting and records a message, hangup refuses.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from voxswitch.engine.accounts import AccountDirectory
from voxswitch.engine.apps import APPS, CallContext
from voxswitch.engine.builtin_apps import connect
from voxswitch.engine.routing import DefaultRouter, Incoming, Refusal, Route
from voxswitch.store.database import Database
from voxswitch.store.models import BlockedNumber, CallRecord, CallRoute, Device, Did, Recording, User

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
NO_ROUTE_ANNOUNCEMENT = "The number you have called is not available at the moment. Please try again later."
VOICEMAIL_GREETING = "The person you are calling is not available. Please leave a message after the tone."


@dataclass(frozen=True)
class RouteRule:
    """A route as the decision needs it (a `routes` row)."""

    id: int
    name: str
    priority: int
    conditions: Mapping[str, Any]
    action: str
    action_data: Mapping[str, Any]
    enabled: bool = True


def parse_hhmm(text: str) -> time:
    m = _HHMM.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not HH:MM (24 h)")
    return time(int(m.group(1)), int(m.group(2)))


def number_matches(pattern: str, number: str) -> bool:
    """An exact number, or a prefix ending in `*` ("+1900*"). `+` and a leading `00` are the same."""

    def canon(n: str) -> str:
        n = n.strip()
        return "+" + n[2:] if n.startswith("00") else n

    pattern, number = canon(pattern), canon(number)
    if pattern.endswith("*"):
        return number.startswith(pattern[:-1])
    return number == pattern


def matches(conditions: Mapping[str, Any], now: datetime, caller: str) -> bool:
    """Do a route's conditions hold for `caller` at local time `now`? Missing conditions always hold."""
    start, end = conditions.get("time_start"), conditions.get("time_end")
    days = conditions.get("days")
    if start and end:
        t0, t1, t = parse_hhmm(str(start)), parse_hhmm(str(end)), now.time().replace(second=0, microsecond=0)
        if t0 <= t1:
            inside = t0 <= t < t1
            day = now
        else:  # overnight, e.g. 22:00-06:00: after midnight belongs to the previous day's window
            inside = t >= t0 or t < t1
            day = now - timedelta(days=1) if t < t1 else now
        if not inside:
            return False
        if days and DAYS[day.weekday()] not in days:
            return False
    elif days and DAYS[now.weekday()] not in days:
        return False
    patterns = conditions.get("caller_patterns")
    return not (patterns and not any(number_matches(str(p), caller) for p in patterns))


def choose(rules: list[RouteRule], now: datetime, caller: str) -> RouteRule | None:
    """The first enabled route, by priority (then id), whose conditions hold."""
    for rule in sorted(rules, key=lambda r: (r.priority, r.id)):
        if rule.enabled and matches(rule.conditions, now, caller):
            return rule
    return None


def did_candidates(dialled: str) -> list[str]:
    """Trunks send a DID as "+15551234567", "15551234567" or "0015551234567": try each form."""
    digits = dialled.lstrip("+")
    if digits.startswith("00"):
        digits = digits[2:]
    return list(dict.fromkeys([dialled, f"+{digits}", digits]))


@dataclass
class RoutingTables:
    dids: dict[str, Did]
    routes: dict[int, list[RouteRule]]
    blocklist: list[BlockedNumber]
    devices: dict[int, Device]
    commits: int  # Database.commits when loaded
    loaded_at: float


class PbxRouter:
    def __init__(
        self,
        db: Database,
        accounts: AccountDirectory,
        fallback: DefaultRouter,
        *,
        timezone: str = "UTC",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.fallback = fallback
        self.zone = ZoneInfo(timezone)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._cache: RoutingTables | None = None
        self._loading: asyncio.Task[RoutingTables] | None = None  # the reload in flight, shared
        self._loading_commits = -1  # Database.commits when it started

    def local_now(self) -> datetime:
        now = self.clock()
        return (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(self.zone)

    async def route(self, incoming: Incoming) -> Route | Refusal:
        tables = await self._tables()
        blocked = next((b for b in tables.blocklist if number_matches(b.phone_number, incoming.caller)), None)
        if blocked is not None:
            log.info("blocked caller %s (%s)", incoming.caller, blocked.reason)
            return Route(refuse, "blocked", {"status": 603, "cause": f"blocked: {blocked.reason or 'blocklist'}"})
        did = next((tables.dids[n] for n in did_candidates(incoming.dialled) if n in tables.dids), None)
        if did is not None:
            return self._did_route(tables, did, incoming)
        target = self.accounts.get(incoming.dialled)
        if target is not None and target.dnd:
            return Route(refuse, "dnd", {"status": 486, "cause": "do not disturb"}, direction="internal")
        route = await self.fallback.route(incoming)
        if isinstance(route, Route) and route.direction == "outbound" and incoming.device is not None:
            async with self.db.session() as s:
                refusal = await self._may_call_out(s, incoming.device)
            if refusal is not None:
                return refusal
        return route

    async def _tables(self) -> RoutingTables:
        """The DIDs, routes and blocklist, kept in memory: reloaded (one session, four queries) after
        any commit through this database, and at least every second for writers elsewhere. Calls
        that arrive while a reload runs share it: under load, each starting its own made the
        reloads slower, so more calls started one (a third of the loop's time at 80 calls/s)."""
        now = asyncio.get_running_loop().time()
        cached = self._cache
        if cached is not None and cached.commits == self.db.commits and now - cached.loaded_at < 1.0:
            return cached
        loading = self._loading
        if loading is None or loading.done() or self._loading_commits != self.db.commits:
            loading = self._loading = asyncio.get_running_loop().create_task(self._load(), name="pbx-tables")
            self._loading_commits = self.db.commits
        return await asyncio.shield(loading)

    async def _load(self) -> RoutingTables:
        commits = self.db.commits
        now = asyncio.get_running_loop().time()
        async with self.db.session() as s:
            dids = {d.phone_number: d for d in (await s.execute(select(Did))).scalars()}
            routes: dict[int, list[RouteRule]] = {}
            for r in (await s.execute(select(CallRoute))).scalars():
                rule = RouteRule(r.id, r.name, r.priority, r.conditions, r.action, r.action_data, r.enabled)
                routes.setdefault(r.did_id, []).append(rule)
            blocklist = list((await s.execute(select(BlockedNumber))).scalars())
            devices = {d.id: d for d in (await s.execute(select(Device))).scalars()}
        self._cache = RoutingTables(dids, routes, blocklist, devices, commits, now)
        return self._cache

    def _did_route(self, tables: RoutingTables, did: Did, incoming: Incoming) -> Route:
        rule = choose(tables.routes.get(did.id, []), self.local_now(), incoming.caller)
        if rule is None:
            return Route(announce, "no-route", {"text": NO_ROUTE_ANNOUNCEMENT}, did=did.phone_number)
        app, params = self._action(tables, rule, did)
        return Route(app, rule.action, params, direction="inbound", did=did.phone_number, route_id=rule.id)

    def _action(self, tables: RoutingTables, rule: RouteRule, did: Did) -> tuple[Any, dict[str, Any]]:
        data = dict(rule.action_data)
        if rule.action in ("forward", "ring_group"):
            ids = [data["device_id"]] if rule.action == "forward" else list(data.get("device_ids", []))
            by_id = tables.devices
            names = [by_id[i].username for i in ids if i in by_id and self._reachable(by_id[i].username)]
            if not names:
                return refuse, {"status": 486, "cause": "no device available"}
            strategy = data.get("strategy", "simultaneous")
            return ring_group, {
                "targets": names,
                "strategy": strategy if rule.action == "ring_group" else "simultaneous",
                "ring_seconds": data.get("ring_seconds"),
                "caller_id": None,
            }
        if rule.action == "external":
            return connect, {"target": str(data["number"]), "caller_id": did.phone_number}
        if rule.action == "app":
            name = str(data.get("app", ""))
            if name not in APPS:
                return announce, {"text": NO_ROUTE_ANNOUNCEMENT}
            return APPS[name], dict(data.get("params", {}))
        if rule.action == "voicemail":
            return voicemail, {"greeting": data.get("greeting") or VOICEMAIL_GREETING, "did_id": did.id}
        return refuse, {"status": 486 if data.get("reason") == "busy" else 603, "cause": data.get("reason") or "route"}

    def _reachable(self, username: str) -> bool:
        """Enabled and not in do-not-disturb, as the registrar's accounts say now."""
        account = self.accounts.get(username)
        return account is not None and account.enabled and not account.dnd

    async def _may_call_out(self, s: Any, device: str) -> Refusal | None:
        account = self.accounts.get(device)
        if account is None or account.user_id is None:
            return None  # an admin's device
        user = await s.get(User, account.user_id)
        if user is None:
            return None
        if not user.can_call or not user.is_active:
            return Refusal(403, "Forbidden - Outside Calls Not Allowed")
        start = self.local_now().replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        placed = (
            await s.execute(
                select(func.count())
                .select_from(CallRecord)
                .where(
                    CallRecord.user_id == user.id, CallRecord.direction == "outbound", CallRecord.created_at >= start
                )
            )
        ).scalar_one()
        if placed >= user.call_limit_per_day:
            return Refusal(403, "Forbidden - Daily Call Limit Reached")
        return None


# --- the apps route actions run ------------------------------------------------------------------


async def refuse(ctx: CallContext) -> None:
    """Refuse without answering: busy (486) or declined (603), with the cause on the record."""
    status = int(ctx.params.get("status", 603))
    await ctx.reject("busy" if status == 486 else "rejected", status=status, cause=ctx.params.get("cause"))


async def announce(ctx: CallContext) -> None:
    """Answer, say why the call cannot go on, hang up: a caller never hears silence."""
    await ctx.say(str(ctx.params["text"]))
    await ctx.hangup("announcement")


async def ring_group(ctx: CallContext) -> None:
    """Ring devices all at once, or one after another (`ring_seconds` each); the first answer wins."""
    targets: list[str] = list(ctx.params["targets"])
    seconds = ctx.params.get("ring_seconds")
    timeout = float(seconds) if seconds else None
    if ctx.params.get("strategy") == "sequential":
        for target in targets:
            result = await ctx.dial(target, timeout=timeout)
            if result.status == "completed" or ctx.leg.ended.is_set():
                return
        return
    await ctx.dial(targets, timeout=timeout)


async def voicemail(ctx: CallContext) -> None:
    """Play the greeting, record a message after the tone, keep it as a voicemail for the DID."""
    await ctx.say(str(ctx.params["greeting"]))
    recording = await ctx.record(max_seconds=float(ctx.params.get("max_seconds", 120.0)))
    async with ctx.engine.db.writing() as s:
        row = await s.get(Recording, recording.id)
        if row is not None:
            row.kind = "voicemail"
            row.did_id = ctx.params.get("did_id")
            row.caller = ctx.call.from_number[:64]
            await s.commit()
    await ctx.hangup("voicemail left")
