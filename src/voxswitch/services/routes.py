"""Routes: how calls to a DID are handled, by priority, under conditions, with one action each.

The engine's PBX router (`engine/pbx_routing.py`) reads these rows at call time, so nothing reaches
the table that it could misread: conditions and `action_data` are checked field by field here and
stored in one canonical shape (see `CallRoute`'s docstring):

    conditions   {"time_start": "HH:MM", "time_end": "HH:MM", "days": ["mon", ...],
                  "caller_patterns": ["+1555*", "+15550001111"]}        every key optional
    forward      {"device_id": 1}
    ring_group   {"device_ids": [1, 2], "strategy": "simultaneous"|"sequential", "ring_seconds": 20}
    external     {"number": "+15559876543"}
    app          {"app": "hello", "params": {...}}                       an app in engine.apps.APPS
    voicemail    {"device_id": 1, "greeting": "text"}                    both optional
    hangup       {"reason": "busy"}                                      optional

A time window with start after end runs overnight (22:00-06:00); start equal to end is refused, it
would never match. Reordering takes every route of one DID, in the new order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from voxswitch.engine.apps import APPS
from voxswitch.engine.pbx_routing import DAYS, parse_hhmm
from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.services.validation import Problems, is_e164, is_number_pattern, object_id, plain_text
from voxswitch.store.database import Database
from voxswitch.store.models import CallRoute, Device, Did

ACTIONS = ("forward", "ring_group", "external", "app", "voicemail", "hangup")
STRATEGIES = ("simultaneous", "sequential")
CONDITION_KEYS = ("time_start", "time_end", "days", "caller_patterns")
MAX_PATTERNS = 100
MAX_RING_GROUP = 50
MAX_PRIORITY = 1_000_000
EDITABLE = frozenset({"name", "did_id", "priority", "conditions", "action", "action_data", "enabled"})
_ACTION_KEYS: dict[str, frozenset[str]] = {
    "forward": frozenset({"device_id"}),
    "ring_group": frozenset({"device_ids", "strategy", "ring_seconds"}),
    "external": frozenset({"number"}),
    "app": frozenset({"app", "params"}),
    "voicemail": frozenset({"device_id", "greeting"}),
    "hangup": frozenset({"reason"}),
}


def check_conditions(problems: Problems, conditions: object) -> dict[str, Any]:
    """The conditions in canonical form (days in week order, lower case), problems noted."""
    if conditions is None:
        return {}
    if not isinstance(conditions, dict):
        problems.add("conditions", "must be an object")
        return {}
    out: dict[str, Any] = {}
    for key in conditions:
        if key not in CONDITION_KEYS:
            problems.add(f"conditions.{key}", f"unknown condition; use {', '.join(CONDITION_KEYS)}")
    start, end = conditions.get("time_start"), conditions.get("time_end")
    times = {}
    for key, value in (("time_start", start), ("time_end", end)):
        if value is None:
            continue
        try:
            times[key] = parse_hhmm(value) if isinstance(value, str) else None
        except ValueError:
            times[key] = None
        if times[key] is None:
            problems.add(f"conditions.{key}", "must be HH:MM on a 24-hour clock (00:00-23:59)", value)
    if (start is None) != (end is None):
        missing = "time_end" if end is None else "time_start"
        problems.add(f"conditions.{missing}", f"is required with {'time_start' if end is None else 'time_end'}")
    elif times.get("time_start") and times.get("time_end"):
        if times["time_start"] == times["time_end"]:
            problems.add("conditions.time_end", "must differ from time_start (an overnight window may end earlier)")
        else:
            out["time_start"], out["time_end"] = start, end
    days = conditions.get("days")
    if days is not None:
        if not isinstance(days, list) or not days or not all(isinstance(d, str) for d in days):
            problems.add("conditions.days", f"must be a non-empty list of {', '.join(DAYS)}")
        else:
            lowered = [d.lower() for d in days]
            wrong = [d for d in lowered if d not in DAYS]
            if wrong:
                problems.add("conditions.days", f"unknown day {wrong[0]!r}; use {', '.join(DAYS)}")
            else:
                out["days"] = [d for d in DAYS if d in lowered]
    patterns = conditions.get("caller_patterns")
    if patterns is not None:
        if not isinstance(patterns, list) or not patterns or len(patterns) > MAX_PATTERNS:
            problems.add("conditions.caller_patterns", f"must be a list of 1-{MAX_PATTERNS} numbers or prefixes")
        else:
            for i, p in enumerate(patterns):
                if not is_number_pattern(p):
                    problems.add(
                        f"conditions.caller_patterns.{i}",
                        "must be an E.164 number (+15551234567) or a prefix ending in * (+1555*)",
                        p if isinstance(p, str) else None,
                    )
            if not any(f.field.startswith("conditions.caller_patterns") for f in problems.items):
                out["caller_patterns"] = list(dict.fromkeys(patterns))
    return out


def _check_params(problems: Problems, params: object) -> dict[str, Any]:
    """An app's parameters: a flat object of short scalars (what a route can sensibly carry)."""
    if not isinstance(params, dict) or len(params) > 20:
        problems.add("action_data.params", "must be an object of at most 20 entries")
        return {}
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"action_data.params.{key}"
        if not isinstance(key, str) or not key or len(key) > 64 or not key.replace("_", "").isalnum():
            problems.add("action_data.params", f"parameter names are 1-64 letters, digits or '_' ({key!r} is not)")
        elif isinstance(value, bool) or value is None:
            out[key] = value
        elif isinstance(value, int) and abs(value) <= 2**31:
            out[key] = value
        elif isinstance(value, float) and value == value and abs(value) < 1e12:
            out[key] = value
        elif isinstance(value, str):
            text = plain_text(problems, name, value, max_length=1000)
            if text is not None:
                out[key] = value
        else:
            problems.add(name, "must be a string, a number, true/false or null")
    return out


def _check_ring_group(problems: Problems, data: dict[str, Any], out: dict[str, Any]) -> list[tuple[str, int]]:
    devices: list[tuple[str, int]] = []
    ids = data.get("device_ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_RING_GROUP:
        problems.add("action_data.device_ids", f"must be a list of 1-{MAX_RING_GROUP} device ids")
    else:
        checked = [object_id(problems, f"action_data.device_ids.{i}", v) for i, v in enumerate(ids)]
        if all(c is not None for c in checked) and len(set(checked)) != len(checked):
            problems.add("action_data.device_ids", "must not name a device twice")
        for i, ident in enumerate(checked):
            if ident is not None:
                devices.append((f"action_data.device_ids.{i}", ident))
        out["device_ids"] = [c for c in checked if c is not None]
    strategy = data.get("strategy", "simultaneous")
    if strategy not in STRATEGIES:
        problems.add("action_data.strategy", f"must be one of {', '.join(STRATEGIES)}")
    out["strategy"] = strategy
    seconds = data.get("ring_seconds")
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 5 <= seconds <= 300:
            problems.add("action_data.ring_seconds", "must be a whole number of seconds, 5-300")
        else:
            out["ring_seconds"] = seconds
    return devices


def check_action(problems: Problems, action: object, data: object) -> tuple[str, dict[str, Any], list[tuple[str, int]]]:
    """The action, its data in canonical form, and the device ids it names (with their fields), to be
    checked against the store by the caller."""
    devices: list[tuple[str, int]] = []
    if action not in ACTIONS:
        problems.add("action", f"must be one of {', '.join(ACTIONS)}", action if isinstance(action, str) else None)
        return str(action), {}, devices
    assert isinstance(action, str)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.add("action_data", "must be an object")
        return action, {}, devices
    for key in data:
        if key not in _ACTION_KEYS[action]:
            problems.add(f"action_data.{key}", f"is not a field of a {action} action")
    out: dict[str, Any] = {}
    if action in ("forward", "voicemail") and ("device_id" in data or action == "forward"):
        if "device_id" not in data:
            problems.add("action_data.device_id", "is required")
        else:
            ident = object_id(problems, "action_data.device_id", data["device_id"])
            if ident is not None:
                out["device_id"] = ident
                devices.append(("action_data.device_id", ident))
    if action == "voicemail" and data.get("greeting") is not None:
        greeting = plain_text(problems, "action_data.greeting", data["greeting"], min_length=1, max_length=1000)
        if greeting:
            out["greeting"] = greeting
    if action == "ring_group":
        devices = _check_ring_group(problems, data, out)
    if action == "external":
        number = data.get("number")
        if number is None:
            problems.add("action_data.number", "is required")
        elif not is_e164(number):
            problems.add("action_data.number", "must be an E.164 number such as +15559876543", number)
        else:
            out["number"] = number
    if action == "app":
        name = data.get("app")
        if name is None:
            problems.add("action_data.app", "is required")
        elif not isinstance(name, str) or name not in APPS:
            problems.add("action_data.app", f"must name a registered app: {', '.join(sorted(APPS))}")
        else:
            out["app"] = name
        if "params" in data:
            out["params"] = _check_params(problems, data["params"])
    if action == "hangup" and data.get("reason") is not None:
        reason = plain_text(problems, "action_data.reason", data["reason"], min_length=1, max_length=100)
        if reason:
            out["reason"] = reason
    return action, out, devices


class RouteService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_routes(self, *, did_id: int | None, limit: int, offset: int) -> tuple[list[CallRoute], int]:
        query = select(CallRoute)
        count = select(func.count()).select_from(CallRoute)
        if did_id is not None:
            query, count = query.where(CallRoute.did_id == did_id), count.where(CallRoute.did_id == did_id)
        order = (CallRoute.did_id, CallRoute.priority, CallRoute.id)
        async with self.db.session() as s:
            total = int((await s.execute(count)).scalar_one())
            rows = (await s.execute(query.order_by(*order).limit(limit).offset(offset))).scalars()
            return list(rows), total

    async def get(self, route_id: int) -> CallRoute:
        async with self.db.session() as s:
            route = await s.get(CallRoute, route_id)
        if route is None:
            raise VoxError.not_found("Route")
        return route

    async def _validated(self, fields: dict[str, Any], current: CallRoute | None) -> dict[str, Any]:
        """Every field of the route-to-be checked, against the store too (DID, devices, name)."""
        problems = Problems()
        merged: dict[str, Any] = {}
        if current is not None:
            merged = {k: getattr(current, k) for k in EDITABLE}
        merged.update(fields)
        new_action = current is not None and fields.get("action", current.action) != current.action
        if new_action and "action_data" not in fields:
            merged["action_data"] = {}  # a new action starts from its own data, not the old one's
        out: dict[str, Any] = {}
        out["name"] = plain_text(problems, "name", merged.get("name"), min_length=1, max_length=200)
        if "did_id" not in merged:
            problems.add("did_id", "is required")
            did_id = None
        else:
            did_id = object_id(problems, "did_id", merged["did_id"])
        out["did_id"] = did_id
        priority = merged.get("priority")
        if priority is not None:
            if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
                problems.add("priority", f"must be a whole number 0-{MAX_PRIORITY}", priority)
            out["priority"] = priority
        enabled = merged.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.add("enabled", "must be true or false")
        out["enabled"] = enabled
        out["conditions"] = check_conditions(problems, merged.get("conditions"))
        if "action" not in merged:
            problems.add("action", f"is required: one of {', '.join(ACTIONS)}")
            devices: list[tuple[str, int]] = []
        else:
            out["action"], out["action_data"], devices = check_action(
                problems, merged["action"], merged.get("action_data")
            )
        async with self.db.session() as s:
            if did_id is not None and await s.get(Did, did_id) is None:
                problems.add("did_id", "no such DID", did_id)
            if devices:
                wanted = {ident for _, ident in devices}
                found = set((await s.execute(select(Device.id).where(Device.id.in_(wanted)))).scalars())
                for field, ident in devices:
                    if ident not in found:
                        problems.add(field, f"no such device: {ident}", ident)
            problems.check()
            if out["name"] and did_id is not None:
                clash = select(CallRoute.id).where(CallRoute.did_id == did_id, CallRoute.name == out["name"])
                if current is not None:
                    clash = clash.where(CallRoute.id != current.id)
                if (await s.execute(clash.limit(1))).first() is not None:
                    raise VoxError(
                        ErrorKind.CONFLICT,
                        "This DID already has a route with this name",
                        [FieldProblem("name", "already used on this DID", out["name"])],
                    )
            if out.get("priority") is None:
                top = (
                    await s.execute(select(func.max(CallRoute.priority)).where(CallRoute.did_id == did_id))
                ).scalar_one()
                out["priority"] = (top or 0) + 1
        return out

    async def create(self, fields: dict[str, Any]) -> CallRoute:
        values = await self._validated(fields, None)
        route = CallRoute(**values)
        async with self.db.writing() as s:
            s.add(route)
            await s.commit()
        return route

    async def update(self, route_id: int, changes: dict[str, Any]) -> CallRoute:
        unknown = set(changes) - EDITABLE
        if unknown:
            raise VoxError.invalid(sorted(unknown)[0], "cannot be changed")
        current = await self.get(route_id)
        values = await self._validated(changes, current)
        async with self.db.writing() as s:
            route = await s.get(CallRoute, route_id)
            if route is None:
                raise VoxError.not_found("Route")
            for key, value in values.items():
                setattr(route, key, value)
            await s.commit()
            return route

    async def delete(self, route_id: int) -> None:
        async with self.db.writing() as s:
            route = await s.get(CallRoute, route_id)
            if route is None:
                raise VoxError.not_found("Route")
            await s.delete(route)
            await s.commit()

    async def reorder(self, order: list[int]) -> list[CallRoute]:
        """Priorities 1..n in the given order; the list must hold every route of one DID, once each."""
        problems = Problems()
        if not order:
            problems.add("order", "must list the route ids of one DID")
        for i, ident in enumerate(order):
            object_id(problems, f"order.{i}", ident)
        if len(set(order)) != len(order):
            problems.add("order", "must not name a route twice")
        problems.check()
        async with self.db.writing() as s:
            found = {r.id: r for r in (await s.execute(select(CallRoute).where(CallRoute.id.in_(order)))).scalars()}
            for i, ident in enumerate(order):
                if ident not in found:
                    problems.add(f"order.{i}", f"no such route: {ident}", ident)
            problems.check()
            dids = {r.did_id for r in found.values()}
            if len(dids) != 1:
                problems.add("order", f"must hold the routes of one DID (these belong to DIDs {sorted(dids)})")
                problems.check()
            did_id = dids.pop()
            every = set((await s.execute(select(CallRoute.id).where(CallRoute.did_id == did_id))).scalars())
            missing = sorted(every - set(order))
            if missing:
                problems.add("order", f"must list every route of DID {did_id}; missing {missing}")
                problems.check()
            for priority, ident in enumerate(order, start=1):
                found[ident].priority = priority
            await s.commit()
            return [found[i] for i in order]
