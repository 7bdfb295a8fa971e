"""Registrar bindings kept in the store and mirrored in memory (RFC 3261 §10.3).

The RFC's rules live in `sip.registrar`; this module makes their outcome durable and fast to look
up (an in-memory copy per AOR, loaded at start). REGISTERs for one AOR are processed one at a time;
REGISTERs for different AORs that arrive while a commit runs share the next one (group commit), and
each 200 waits until its own binding is committed (`store.registrations` writes the batch).
`register` hands back a future rather than being a coroutine: at thousands of REGISTERs a second a
task, a lock and two coroutine frames per REGISTER were a tenth of the registrar's cost.

Device history (`sip_events`) records a change of an AOR's binding set: a contact, its source
address or its transport appearing or going. A refresh of the same bindings (a phone re-registers
every few minutes) only moves their expiry and logs nothing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import delete, select

from voxswitch.sip.message import Request
from voxswitch.sip.registrar import Binding, RegisterOutcome, RegistrarPolicy, process_register
from voxswitch.store.database import Database
from voxswitch.store.models import Registration
from voxswitch.store.registrations import BindingBatch, BindingRow, BindingWriter, EventRow, binding_writer


def _wall(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _moved(before: list[Binding], outcome: RegisterOutcome) -> bool:
    """The AOR's binding set changed: a contact went, or one came or came from somewhere else."""
    if outcome.removals:
        return True
    old = {b.contact: b for b in before}
    for b in outcome.upserts:
        o = old.get(b.contact)
        if o is None or (o.source_host, o.source_port, o.transport) != (b.source_host, b.source_port, b.transport):
            return True
    return False


class BindingBook:
    def __init__(
        self,
        db: Database,
        policy: RegistrarPolicy | None = None,
        *,
        commit_window: float = 0.010,
        full_batch: int = 64,
    ) -> None:
        self.db = db
        self.policy = policy or RegistrarPolicy()
        # A commit costs 170-560 us of CPU (most of it the fsync, synchronous=FULL; measured on two
        # machines) whatever it holds, and ~13 us a binding. So a batch smaller than `full_batch`
        # waits `commit_window` seconds for company first: at thousands of REGISTERs a second that
        # is tens per commit, for 10 ms of latency a phone never notices. (SIPp at 1,000 REGISTERs
        # a second: 69% of the server's core with a 2 ms window, 53% with 10 ms.)
        self.commit_window = commit_window
        self.full_batch = full_batch
        self._by_aor: dict[str, list[Binding]] = {}
        # AOR with a REGISTER (or forget) in progress -> the REGISTERs and forgets waiting behind it
        self._busy: dict[str, list[_Job | asyncio.Future[None]]] = {}
        self._writer: BindingWriter = binding_writer(db)
        self._pending: list[tuple[BindingBatch, _Job, RegisterOutcome]] = []
        self._flusher: asyncio.Task[None] | None = None
        # The loop the book serves, taken once: asyncio.get_running_loop() asks the kernel for the
        # process id on every call (Python 3.11), a system call per REGISTER.
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

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
        waiting = self._busy.get(aor)
        if waiting is None:
            self._busy[aor] = []
        else:  # after the REGISTERs already in line for this AOR, before any that come later
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiting.append(turn)
            await turn
        try:
            async with self.db.writing() as s:
                await s.execute(delete(Registration).where(Registration.aor == aor))
                await s.commit()
            dropped = self._by_aor.pop(aor, [])
        finally:
            self._next(aor)
        return len(dropped)

    async def close(self) -> None:
        """Finish the commit under way, then release the writer's connection."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._writer.close()

    def register(
        self,
        aor: str,
        device_id: int,
        request: Request,
        *,
        source_host: str,
        source_port: int,
        transport: str,
        to_tag: str | None = None,
    ) -> asyncio.Future[RegisterOutcome]:
        """Apply a REGISTER. The future holds its outcome once the bindings it changed are durable,
        or `sip.registrar.RegistrarError` for the RFC's refusals, or the store's error."""
        done: asyncio.Future[RegisterOutcome] = self._running_loop().create_future()
        job = _Job(aor, device_id, request, source_host, source_port, transport, to_tag, done)
        waiting = self._busy.get(aor)
        if waiting is None:
            self._busy[aor] = []
            self._apply(job)
        else:
            waiting.append(job)  # applied once the one before it is committed, on what it left
        return job.done

    def _apply(self, job: _Job) -> None:
        try:
            now = time.time()
            before = self.lookup(job.aor, now)
            outcome = process_register(
                job.request,
                before,
                now,
                source_host=job.source_host,
                source_port=job.source_port,
                transport=job.transport,
                policy=self.policy,
                to_tag=job.to_tag,
            )
        except Exception as exc:  # RegistrarError, or a Contact that does not parse
            self._finish(job, None, exc)
            return
        if not (outcome.upserts or outcome.removals):
            self._finish(job, outcome, None)  # e.g. a query: nothing to write
            return
        batch = BindingBatch(
            removals=[(job.aor, contact) for contact in outcome.removals],
            upserts=[_row(job.device_id, job.aor, b) for b in outcome.upserts],
        )
        if _moved(before, outcome):
            kind = "registered" if outcome.keep else "unregistered"
            detail = ", ".join(b.contact for b in outcome.keep) or ", ".join(outcome.removals)
            source = f"{job.source_host}:{job.source_port}"
            batch.events.append(EventRow(job.device_id, job.aor, kind, source, detail))
        self._pending.append((batch, job, outcome))
        if self._flusher is None or self._flusher.done():
            self._flusher = self._running_loop().create_task(self._flush())

    def _finish(self, job: _Job, outcome: RegisterOutcome | None, error: Exception | None) -> None:
        """The REGISTER is answered (durable, refused or failed): the next one for its AOR may go."""
        if outcome is not None:
            self._by_aor[job.aor] = outcome.keep
            if not job.done.done():
                job.done.set_result(outcome)
        elif not job.done.done():
            job.done.set_exception(error or RuntimeError("REGISTER not applied"))
        self._next(job.aor)

    def _next(self, aor: str) -> None:
        """The AOR's REGISTER (or forget) in progress is done: start the one waiting behind it."""
        waiting = self._busy[aor]
        while waiting:
            item = waiting.pop(0)
            if isinstance(item, _Job):
                self._apply(item)
                return
            if not item.done():  # a forget waiting for its turn (unless it was cancelled meanwhile)
                item.set_result(None)
                return
        del self._busy[aor]

    async def _flush(self) -> None:
        """Group commit: every REGISTER that arrived while the last commit ran goes in the next one."""
        while self._pending:
            if len(self._pending) < self.full_batch and self.commit_window > 0:
                await asyncio.sleep(self.commit_window)
            pending, self._pending = self._pending, []
            batch = BindingBatch()
            for part, _, _ in pending:
                batch.removals += part.removals
                batch.upserts += part.upserts
                batch.events += part.events
            try:
                await self._writer.write(batch)
            except Exception as exc:
                for _, job, _ in pending:
                    self._finish(job, None, exc)
                continue
            for _, job, outcome in pending:
                self._finish(job, outcome, None)  # the 200 may go out: its binding is durable


class _Job(NamedTuple):
    aor: str
    device_id: int
    request: Request
    source_host: str
    source_port: int
    transport: str
    to_tag: str | None
    done: asyncio.Future[RegisterOutcome]


def _row(device_id: int, aor: str, b: Binding) -> BindingRow:
    return BindingRow(
        device_id,
        aor,
        b.contact,
        b.expires_at,
        b.q,
        b.call_id,
        b.cseq,
        b.source_host,
        b.source_port,
        b.transport,
        b.user_agent,
        b.instance_id,
    )
