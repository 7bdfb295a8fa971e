"""DIDs: the phone numbers the PBX answers, typed in by an admin or pulled from the Twilio account.

A sync upserts by Twilio's number sid (a number already typed in by hand is linked to its sid, not
duplicated) and deletes nothing: a number that left the account is only reported, since deleting a
DID deletes its routes and a provider's hiccup must not cost an office its call routing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.services.twilio_account import CAPABILITIES, TwilioAccount
from voxswitch.services.validation import Problems, is_e164, plain_text
from voxswitch.store.database import Database
from voxswitch.store.models import Did

EDITABLE = frozenset({"phone_number", "friendly_name", "capabilities"})


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # numbers Twilio sent that we could not take
    not_in_account: list[str] = field(default_factory=list)  # synced before, gone from the account now
    dids: list[Did] = field(default_factory=list)


def _conflict(number: str) -> VoxError:
    return VoxError(
        ErrorKind.CONFLICT,
        "A DID with this phone number already exists",
        [FieldProblem("phone_number", "already exists", number)],
    )


class DidService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _check(problems: Problems, changes: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "phone_number" in changes:
            number = changes["phone_number"]
            if not is_e164(number):
                problems.add("phone_number", "must be an E.164 number such as +15551234567", number)
            values["phone_number"] = number
        if "friendly_name" in changes:
            values["friendly_name"] = plain_text(problems, "friendly_name", changes["friendly_name"], max_length=200)
        if "capabilities" in changes:
            caps = changes["capabilities"]
            if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
                problems.add("capabilities", f"must be a non-empty list of {', '.join(CAPABILITIES)}")
            else:
                wrong = [c for c in caps if c.lower() not in CAPABILITIES]
                if wrong:
                    problems.add("capabilities", f"unknown capability {wrong[0]!r}; use {', '.join(CAPABILITIES)}")
                lowered = {c.lower() for c in caps}
                values["capabilities"] = [c for c in CAPABILITIES if c in lowered]
        return values

    async def list_dids(self, *, limit: int, offset: int) -> tuple[list[Did], int]:
        async with self.db.session() as s:
            total = int((await s.execute(select(func.count()).select_from(Did))).scalar_one())
            rows = (await s.execute(select(Did).order_by(Did.id).limit(limit).offset(offset))).scalars()
            return list(rows), total

    async def get(self, did_id: int) -> Did:
        async with self.db.session() as s:
            did = await s.get(Did, did_id)
        if did is None:
            raise VoxError.not_found("DID")
        return did

    async def create(self, *, phone_number: str, friendly_name: str = "", capabilities: list[str] | None = None) -> Did:
        problems = Problems()
        values = self._check(
            problems,
            {
                "phone_number": phone_number,
                "friendly_name": friendly_name,
                "capabilities": ["voice"] if capabilities is None else capabilities,
            },
        )
        problems.check()
        did = Did(source="manual", **values)
        async with self.db.writing() as s:
            s.add(did)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise _conflict(phone_number) from exc
        return did

    async def update(self, did_id: int, changes: dict[str, Any]) -> Did:
        unknown = set(changes) - EDITABLE
        if unknown:
            raise VoxError.invalid(sorted(unknown)[0], "cannot be changed")
        await self.get(did_id)
        problems = Problems()
        values = self._check(problems, changes)
        problems.check()
        async with self.db.writing() as s:
            did = await s.get(Did, did_id)
            if did is None:
                raise VoxError.not_found("DID")
            for key, value in values.items():
                setattr(did, key, value)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise _conflict(str(values.get("phone_number"))) from exc
            return did

    async def delete(self, did_id: int) -> None:
        """Delete the DID and, with it, its routes."""
        async with self.db.writing() as s:
            did = await s.get(Did, did_id)
            if did is None:
                raise VoxError.not_found("DID")
            await s.delete(did)
            await s.commit()

    async def sync(self, account: TwilioAccount) -> SyncResult:
        numbers = await account.incoming_numbers()  # raises before anything changes
        result = SyncResult()
        seen: set[str] = set()
        async with self.db.writing() as s:
            rows = list((await s.execute(select(Did))).scalars())
            by_sid = {d.provider_sid: d for d in rows if d.provider_sid}
            by_number = {d.phone_number: d for d in rows}
            for n in numbers:
                if not n.sid or not is_e164(n.phone_number):
                    result.skipped.append(n.phone_number or n.sid)
                    continue
                seen.add(n.sid)
                did = by_sid.get(n.sid)
                holder = by_number.get(n.phone_number)
                if did is None and holder is not None and holder.provider_sid in (None, n.sid):
                    did = holder  # typed in by hand before: link it to its sid
                if did is None and holder is not None:
                    result.skipped.append(n.phone_number)  # held by a DID of another sid
                    continue
                name = n.friendly_name[:200]
                caps = list(n.capabilities)
                if did is None:
                    did = Did(phone_number=n.phone_number, friendly_name=name, capabilities=caps, source="twilio")
                    did.provider_sid = n.sid
                    s.add(did)
                    by_number[n.phone_number] = by_sid[n.sid] = did
                    result.created += 1
                    result.dids.append(did)
                    continue
                if holder is not None and holder is not did:
                    result.skipped.append(n.phone_number)  # its sid's DID was renumbered onto another's
                    continue
                wanted: dict[str, Any] = {"provider_sid": n.sid, "phone_number": n.phone_number, "capabilities": caps}
                if did.source == "twilio" or not did.friendly_name:
                    wanted["friendly_name"] = name
                changed = {k: v for k, v in wanted.items() if getattr(did, k) != v}
                if changed:
                    by_number.pop(did.phone_number, None)
                    for key, value in changed.items():
                        setattr(did, key, value)
                    by_number[did.phone_number] = did
                    result.updated += 1
                else:
                    result.unchanged += 1
                result.dids.append(did)
            await s.commit()
        result.not_in_account = sorted(d.phone_number for d in rows if d.provider_sid and d.provider_sid not in seen)
        return result
