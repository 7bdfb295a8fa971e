"""The blocklist: callers refused before anything rings (the engine's PBX router reads it per call).
An entry is an E.164 number or a prefix of one ending in `*` (`+1900*`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.services.validation import Problems, is_number_pattern, plain_text
from voxswitch.store.database import Database
from voxswitch.store.models import BlockedNumber


class BlocklistService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_entries(self, *, limit: int, offset: int) -> tuple[list[BlockedNumber], int]:
        async with self.db.session() as s:
            total = int((await s.execute(select(func.count()).select_from(BlockedNumber))).scalar_one())
            rows = (
                await s.execute(select(BlockedNumber).order_by(BlockedNumber.id).limit(limit).offset(offset))
            ).scalars()
            return list(rows), total

    async def add(self, phone_number: str, reason: str = "", *, created_by: str | None = None) -> BlockedNumber:
        problems = Problems()
        if not is_number_pattern(phone_number):
            problems.add(
                "phone_number", "must be an E.164 number (+15551234567) or a prefix ending in * (+1900*)", phone_number
            )
        checked_reason = plain_text(problems, "reason", reason, max_length=200)
        problems.check()
        entry = BlockedNumber(phone_number=phone_number, reason=checked_reason or "", created_by=created_by)
        async with self.db.writing() as s:
            s.add(entry)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise VoxError(
                    ErrorKind.CONFLICT,
                    "This number is already on the blocklist",
                    [FieldProblem("phone_number", "already blocked", phone_number)],
                ) from exc
        return entry

    async def remove(self, entry_id: int) -> None:
        async with self.db.writing() as s:
            entry = await s.get(BlockedNumber, entry_id)
            if entry is None:
                raise VoxError.not_found("Blocklist entry")
            await s.delete(entry)
            await s.commit()
