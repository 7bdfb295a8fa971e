"""Registrar bindings in the store (SQLite and PostgreSQL): group commit, and one REGISTER per AOR
at a time, each applied on what the one before it committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from voxswitch.engine.registrar import BindingBook
from voxswitch.sip.message import Request, parse_message
from voxswitch.sip.registrar import RegistrarError
from voxswitch.store.database import Database, normalise_url
from voxswitch.store.migrate import upgrade
from voxswitch.store.models import Device, Registration, SipEvent


def register(user: str, cseq: int, contact: str, expires: int = 600, call_id: str = "c1@phone") -> Request:
    msg = parse_message(
        (
            f"REGISTER sip:registrar.example SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK{user}{cseq}\r\n"
            f"From: <sip:{user}@registrar.example>;tag=f{cseq}\r\n"
            f"To: <sip:{user}@registrar.example>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: {contact}\r\n"
            f"Expires: {expires}\r\n"
            f"Content-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(msg, Request)
    return msg


async def stored(db: Database) -> list[tuple[str, str, int]]:
    async with db.session() as s:
        rows = await s.execute(select(Registration.aor, Registration.contact, Registration.cseq))
        return sorted((aor, contact, cseq) for aor, contact, cseq in rows.all())


async def test_registers_for_one_aor_wait_for_each_other_and_all_share_commits(
    database_url: str | None, tmp_path: Path
) -> None:
    db = Database(normalise_url(database_url, tmp_path))
    await upgrade(db)
    async with db.session() as s:
        for user in ("alice", "bob"):
            s.add(Device(name=user, username=user, realm="r", ha1_md5="0" * 32, ha1_sha256="0" * 64))
        await s.commit()
        ids = {d.username: d.id for d in (await s.execute(select(Device))).scalars()}
    book = BindingBook(db, commit_window=0.01)
    await book.load()
    try:
        sent = dict(source_host="192.0.2.7", source_port=5060, transport="UDP")
        # Sent back to back, as a phone with two lines (and a second phone) would: the second
        # REGISTER for alice must see the first one's binding, and waits for its commit.
        first = book.register("alice", ids["alice"], register("alice", 1, "<sip:alice@192.0.2.7:5060>"), **sent)
        second = book.register("alice", ids["alice"], register("alice", 2, "<sip:alice@192.0.2.7:5062>"), **sent)
        other = book.register("bob", ids["bob"], register("bob", 1, "<sip:bob@192.0.2.8>"), **sent)
        stale = book.register("alice", ids["alice"], register("alice", 2, "<sip:alice@192.0.2.7:5062>"), **sent)
        done = await asyncio.gather(first, second, other, stale, return_exceptions=True)
        assert [len(o.keep) for o in done[:3]] == [1, 2, 1]  # type: ignore[union-attr]
        assert isinstance(done[3], RegistrarError) and done[3].status == 500  # CSeq 2 again on c1@phone
        assert await stored(db) == [
            ("alice", "sip:alice@192.0.2.7:5060", 1),
            ("alice", "sip:alice@192.0.2.7:5062", 2),
            ("bob", "sip:bob@192.0.2.8", 1),
        ]
        gone = await book.register("alice", ids["alice"], register("alice", 3, "*", expires=0), **sent)
        assert gone.keep == [] and book.lookup("alice") == []
        assert [aor for aor, _, _ in await stored(db)] == ["bob"]
        async with db.session() as s:
            kinds = (await s.execute(select(SipEvent.username, SipEvent.kind).order_by(SipEvent.id))).all()
        assert [tuple(k) for k in kinds] == [
            ("alice", "registered"),
            ("bob", "registered"),
            ("alice", "registered"),
            ("alice", "unregistered"),
        ]
    finally:
        await book.close()
        await db.dispose()
