"""Registrar bindings kept in the store and mirrored in memory (RFC 3261 §10.3).

The RFC's rules live in `sip.registrar`; this module makes their outcome durable (one transaction
per REGISTER, so bindings survive a restart) and fast to look up (an in-memory copy per AOR, loaded
at start). REGISTERs for one AOR are processed one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from voxswitch.sip.message import Request
from voxswitch.sip.registrar import Binding, RegisterOutcome, RegistrarPolicy, process_register
from voxswitch.store.database import Database
from voxswitch.store.models import Registration, SipEvent, utcnow


def _wall(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class BindingBook:
    def __init__(self, db: Database, policy: RegistrarPolicy | None = None) -> None:
        self.db = db
        self.policy = policy or RegistrarPolicy()
        self._by_aor: dict[str, list[Binding]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pending: list[tuple[str, int, RegisterOutcome, str, int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def load(self) -> None:
        now = time.time()
        async with self.db.session() as s:
            await s.execute(delete(Registration).where(Registration.expires_at <= _wall(now)))
            rows = (await s.execute(select(Registration))).scalars().all()
            await s.commit()
        book: dict[str, list[Binding]] = {}
        for r in rows:
            book.setdefault(r.aor, []).append(
                Binding(
                    contact=r.contact,
                    expires_at=r.expires_at.timestamp(),
                    call_id=r.call_id,
                    cseq=r.cseq,
                    q=r.q,
                    source_host=r.source_host,
                    source_port=r.source_port,
                    transport=r.transport,
                    user_agent=r.user_agent,
                    instance_id=r.instance_id,
                )
            )
        self._by_aor = book

    def lookup(self, aor: str, now: float | None = None) -> list[Binding]:
        """Live bindings of an AOR, best q first."""
        now = time.time() if now is None else now
        return [b for b in self._by_aor.get(aor, []) if b.expires_at > now]

    def all(self, now: float | None = None) -> dict[str, list[Binding]]:
        now = time.time() if now is None else now
        return {aor: live for aor in self._by_aor if (live := self.lookup(aor, now))}

    async def forget(self, aor: str) -> int:
        """Drop every binding of an AOR, from the store and from memory: its device was deleted or
        its credentials changed, so only a newly authenticated REGISTER may receive its calls."""
        async with self._locks[aor]:
            async with self.db.writing() as s:
                await s.execute(delete(Registration).where(Registration.aor == aor))
                await s.commit()
            dropped = self._by_aor.pop(aor, [])
        return len(dropped)

    async def register(
        self, aor: str, device_id: int, request: Request, *, source_host: str, source_port: int, transport: str
    ) -> RegisterOutcome:
        """Apply a REGISTER; raises `sip.registrar.RegistrarError` for the RFC's refusals."""
        async with self._locks[aor]:
            now = time.time()
            outcome = process_register(
                request,
                self._by_aor.get(aor, []),
                now,
                source_host=source_host,
                source_port=source_port,
                transport=transport,
                policy=self.policy,
            )
            if outcome.upserts or outcome.removals:
                committed = asyncio.get_running_loop().create_future()
                self._pending.append((aor, device_id, outcome, source_host, source_port, committed))
                if self._flusher is None or self._flusher.done():
                    self._flusher = asyncio.get_running_loop().create_task(self._flush())
                await committed  # the 200 goes out only once the binding is durable
            self._by_aor[aor] = outcome.keep
            return outcome

    async def _flush(self) -> None:
        """Group commit: every REGISTER that arrived while the last commit ran goes in the next one,
        as three statements for the whole batch (delete the changed bindings, insert, log events)."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self.db.writing() as s:
                    await self._write(s, batch)
                    await s.commit()
            except Exception as exc:
                for *_, committed in batch:
                    if not committed.done():
                        committed.set_exception(exc)
                continue
            for *_, committed in batch:
                if not committed.done():
                    committed.set_result(None)

    @staticmethod
    async def _write(
        s: AsyncSession, batch: list[tuple[str, int, RegisterOutcome, str, int, asyncio.Future[None]]]
    ) -> None:
        changed = [
            (aor, contact)
            for aor, _, outcome, *_ in batch
            for contact in {b.contact for b in outcome.upserts} | set(outcome.removals)
        ]
        await s.execute(delete(Registration).where(tuple_(Registration.aor, Registration.contact).in_(changed)))
        rows = [
            {
                "device_id": device_id,
                "aor": aor,
                "contact": b.contact,
                "expires_at": _wall(b.expires_at),
                "q": b.q,
                "call_id": b.call_id,
                "cseq": b.cseq,
                "source_host": b.source_host,
                "source_port": b.source_port,
                "transport": b.transport,
                "user_agent": b.user_agent,
                "instance_id": b.instance_id,
                "updated_at": utcnow(),
            }
            for aor, device_id, outcome, *_ in batch
            for b in outcome.upserts
        ]
        if rows:
            await s.execute(insert(Registration), rows)
        events = [
            {
                "device_id": device_id,
                "username": aor,
                "kind": "registered" if outcome.keep else "unregistered",
                "source": f"{host}:{port}",
                "detail": ", ".join(b.contact for b in outcome.keep) or ", ".join(outcome.removals),
                "created_at": utcnow(),
            }
            for aor, device_id, outcome, host, port, _ in batch
        ]
        await s.execute(insert(SipEvent), events)
