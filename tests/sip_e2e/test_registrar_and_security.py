"""Registrar, brute-force bans and extension probing over real UDP sockets against a whole Voxswitch."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import select

from tests.sip_e2e.conftest import RawUdpClient, Voxswitch, running
from voxswitch.sip.digest import answer_challenge
from voxswitch.sip.message import Response
from voxswitch.store.models import Registration, SipEvent


async def register(
    client: RawUdpClient,
    user: str,
    password: str,
    *,
    expires: int = 300,
    contact: str | None = None,
    wait: float = 2.0,
) -> Response | None:
    call_id = secrets.token_hex(8)
    extra = [f"Expires: {expires}"]
    first = await client.send(client.request("REGISTER", user, headers=extra, call_id=call_id), wait)
    if first is None or first.status != 401:
        return first
    uri = f"sip:{client.server[0]}:{client.server[1]}"
    auth = answer_challenge(
        first.get_all("www-authenticate"), "REGISTER", uri, user, password, cnonce=secrets.token_hex(8)
    )
    data = client.request("REGISTER", user, headers=[*extra, f"Authorization: {auth}"], cseq=2, call_id=call_id)
    if contact is not None:
        data = data.replace(f"Contact: <sip:{user}@127.0.0.1:{client.port}>".encode(), f"Contact: {contact}".encode())
    return await client.send(data, wait)


async def test_register_with_digest_then_bindings_survive_a_restart(sip_settings: Any, database_url: Any) -> None:
    settings = sip_settings(database_url=database_url)  # the registrar's store on SQLite and PostgreSQL
    async for vx in running(settings):
        await vx.device("1001", "secret-1001")
        client = RawUdpClient((vx.host, vx.udp))
        ok = await register(client, "1001", "secret-1001")
        assert ok is not None and ok.status == 200, ok
        assert [c.expires for c in ok.contact] == [300]
        binding = vx.state.engine.bindings.lookup("1001")[0]
        assert binding.source_port == client.port and binding.transport == "UDP"
        client.close()
    async for vx in running(settings):  # a new process would do just this: load from the store
        live = vx.state.engine.bindings.lookup("1001")
        assert len(live) == 1 and live[0].contact.endswith(f"127.0.0.1:{binding.source_port}")
        async with vx.state.db.session() as s:
            events = (await s.execute(select(SipEvent.kind))).scalars().all()
        assert "registered" in events


async def stored(vx: Voxswitch) -> list[Registration]:
    async with vx.state.db.session() as s:  # a pooled connection, not the registrar's own
        return list((await s.execute(select(Registration).order_by(Registration.contact))).scalars())


async def history(vx: Voxswitch) -> list[tuple[str, str]]:
    async with vx.state.db.session() as s:
        rows = await s.execute(select(SipEvent.kind, SipEvent.detail).order_by(SipEvent.id))
        return [(kind, detail) for kind, detail in rows.all()]


async def test_a_refresh_is_in_the_store_before_its_200_and_only_changes_are_history(
    sip_settings: Any, database_url: Any
) -> None:
    settings = sip_settings(database_url=database_url)
    async for vx in running(settings):
        await vx.device("1005", "secret-1005")
        client = RawUdpClient((vx.host, vx.udp))
        try:
            assert (await register(client, "1005", "secret-1005", expires=300)).status == 200  # type: ignore[union-attr]
            first = await stored(vx)
            assert len(first) == 1 and first[0].cseq == 2
            refreshed = await register(client, "1005", "secret-1005", expires=3600)
            assert refreshed is not None and [c.expires for c in refreshed.contact] == [3600]
            rows = await stored(vx)  # the same row, its expiry moved, before we were told 200
            assert len(rows) == 1 and rows[0].id == first[0].id and rows[0].call_id != first[0].call_id
            assert 3290 < (rows[0].expires_at - first[0].expires_at).total_seconds() < 3310
            assert [kind for kind, _ in await history(vx)] == ["registered"]  # a refresh is no news

            other = f"<sip:1005@127.0.0.1:{client.port + 1}>"
            assert (await register(client, "1005", "secret-1005", contact=other)).status == 200  # type: ignore[union-attr]
            assert len(await stored(vx)) == 2
            kinds = await history(vx)
            assert [kind for kind, _ in kinds] == ["registered", "registered"] and kinds[1][1].count("sip:") == 2
        finally:
            client.close()
    async for vx in running(settings):  # what survives a restart is what the last 200 said
        live = {b.contact: b for b in vx.state.engine.bindings.lookup("1005")}
        assert len(live) == 2
        mine = live[f"sip:1005@127.0.0.1:{client.port}"]
        assert 3500 < mine.remaining(time.time()) <= 3600
        client = RawUdpClient((vx.host, vx.udp))
        try:
            gone = await register(client, "1005", "secret-1005", expires=0, contact="*")
            assert gone is not None and gone.status == 200 and gone.contact == []
            assert await stored(vx) == []
            assert [kind for kind, _ in await history(vx)] == ["registered", "registered", "unregistered"]
        finally:
            client.close()


async def test_unregister_with_wildcard_and_interval_too_brief(voxswitch: Voxswitch) -> None:
    await voxswitch.device("1002", "secret-1002")
    client = RawUdpClient((voxswitch.host, voxswitch.udp))
    try:
        brief = await register(client, "1002", "secret-1002", expires=5)
        assert brief is not None and brief.status == 423 and brief.get("min-expires") == "60"
        assert (await register(client, "1002", "secret-1002")).status == 200  # type: ignore[union-attr]
        gone = await register(client, "1002", "secret-1002", expires=0, contact="*")
        assert gone is not None and gone.status == 200 and gone.contact == []
        assert voxswitch.state.engine.bindings.lookup("1002") == []
        async with voxswitch.state.db.session() as s:
            assert (await s.execute(select(Registration))).scalars().all() == []
    finally:
        client.close()


async def test_a_device_cannot_register_someone_elses_address(voxswitch: Voxswitch) -> None:
    await voxswitch.device("1003", "secret-1003")
    await voxswitch.device("1004", "secret-1004")
    client = RawUdpClient((voxswitch.host, voxswitch.udp))
    try:
        call_id = secrets.token_hex(8)
        first = await client.send(client.request("REGISTER", "1004", call_id=call_id))
        assert first is not None and first.status == 401
        uri = f"sip:{voxswitch.host}:{voxswitch.udp}"
        auth = answer_challenge(first.get_all("www-authenticate"), "REGISTER", uri, "1003", "secret-1003", cnonce="c")
        r = await client.send(
            client.request("REGISTER", "1004", headers=[f"Authorization: {auth}"], cseq=2, call_id=call_id)
        )
        assert r is not None and r.status == 403
    finally:
        client.close()


async def test_password_brute_force_gets_the_source_banned(sip_settings: Any) -> None:
    async for vx in running(sip_settings(sip_ban_after=6)):
        await vx.device("2001", "the-real-secret")
        attacker = RawUdpClient((vx.host, vx.udp))
        answers = []
        for guess in range(10):
            r = await register(attacker, "2001", f"guess-{guess}", expires=60, wait=0.5)
            answers.append(r.status if r is not None else None)
        # wrong guesses are re-challenged, then the source falls silent: banned, not even parsed
        assert answers[:5] == [401] * 5 and answers[-1] is None, answers
        assert "127.0.0.1" in vx.state.engine.sip.guard.bans
        # the right password from the banned source gets no answer either
        assert await register(attacker, "2001", "the-real-secret", wait=0.5) is None
        async with vx.state.db.session() as s:
            bans = (await s.execute(select(SipEvent).where(SipEvent.kind == "banned"))).scalars().all()
        assert len(bans) == 1 and bans[0].source == "127.0.0.1" and bans[0].username == "2001"
        attacker.close()


def shape(r: Response | None) -> tuple[Any, ...]:
    """What a prober can see, minus the values that are random per answer (tags, nonces)."""
    assert r is not None
    return (
        r.status,
        r.reason,
        sorted(h.name for h in r.headers if h.name not in ("Via",)),
        [c.split("nonce=")[0] for c in r.get_all("www-authenticate") + r.get_all("proxy-authenticate")],
    )


async def test_probing_extensions_learns_nothing(voxswitch: Voxswitch) -> None:
    await voxswitch.device("3001", "secret-3001")
    client = RawUdpClient((voxswitch.host, voxswitch.udp))
    try:
        for method in ("REGISTER", "INVITE", "MESSAGE", "OPTIONS", "SUBSCRIBE"):
            real = await client.send(client.request(method, "3001"))
            fake = await client.send(client.request(method, "3999"))
            assert shape(real) == shape(fake), method
        # and with a wrong password, an existing and a missing user still look the same
        real = await register(client, "3001", "wrong-password")
        fake = await register(client, "3999", "wrong-password")
        assert shape(real) == shape(fake) and real is not None and real.status == 401
    finally:
        client.close()


async def test_malformed_requests_get_a_400_naming_the_fault(voxswitch: Voxswitch) -> None:
    client = RawUdpClient((voxswitch.host, voxswitch.udp))
    try:
        data = client.request("OPTIONS", "x").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
        r = await client.send(data)
        assert r is not None and r.status == 400 and "CSeq" in r.reason
        flood = [b"\x00garbage" * 100, b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n"] * 50
        for junk in flood:  # unanswerable junk costs nothing and changes nothing
            assert await client.send(junk, wait=0.01) is None
        assert (await client.send(client.request("OPTIONS", "x"))).status == 200  # type: ignore[union-attr]
    finally:
        client.close()
