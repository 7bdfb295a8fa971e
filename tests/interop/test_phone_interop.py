"""PJSIP and baresip as phones on Voxswitch, over UDP, TCP and TLS (issue #3): each registers with
digest, sends OPTIONS to Voxswitch, and sends and receives a MESSAGE relayed through Voxswitch.

| peer    | transports    | digest                       | OPTIONS       | MESSAGE                            |
|---------|---------------|------------------------------|---------------|------------------------------------|
| PJSIP   | UDP, TCP, TLS | MD5, SHA-256 (each, both)    | 200 + Allow   | to PJSIP, from PJSIP, 480, 404     |
| baresip | UDP, TCP, TLS | MD5 (libre 1.1 has no other) | 200 + Allow   | to baresip, from baresip, 480      |
| mixed   | UDP, TCP, TLS | PJSIP MD5, baresip MD5       |               | PJSIP -> baresip, baresip -> PJSIP |

Plus: a PJSIP phone that restarted without un-REGISTERing still gets its messages (the relay
forks to every binding), and baresip failing where SHA-256 is offered is pinned.

Two servers for the whole module: PJSIP's offers SHA-256 then MD5 (RFC 8760 §2.4), so its MD5
case is a client picking the second challenge; baresip's offers MD5 only, because libre 1.x gives
up on a 401 as soon as any challenge names an algorithm it lacks. Every test has accounts of its
own, so a binding left by one cannot receive another's MESSAGE. What each peer sent and got is
read from its own SIP log (PJSIP's log, baresip's -s trace), never from Voxswitch's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import SipServer, start_voxswitch, stop_voxswitch
from tests.peers import digest
from tests.peers.baresip import Baresip, Exchange
from tests.peers.pjsua import PjsuaAgent
from tests.peers.siplog import SipMessage, parse_message
from tests.peers.tls import TlsFiles, make_self_signed

# 60 s: the first test of each server pays for starting it (10-30 s on a loaded machine).
pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TRANSPORTS = ["udp", "tcp", "tls"]
PJSIP_ALGORITHMS = ["md5", "sha-256"]
REALM = "voxswitch"
#: What Voxswitch's OPTIONS answer must allow: every method it handles (RFC 3261 §11.2, §20.5).
ALLOW = {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "MESSAGE", "INFO", "UPDATE", "REFER", "NOTIFY"}
ALLOW |= {"SUBSCRIBE"}  # answered 489 Bad Event: the method is known, no package is


def _password(user: str) -> str:
    return f"pw-{user}-0123"


def _users(*names: str) -> dict[str, str]:
    return {name: _password(name) for name in names}


PJSIP_USERS = _users(
    *(f"pj-{t}-{a}-{side}" for t in TRANSPORTS for a in PJSIP_ALGORITHMS for side in "ab"),
    "nobody-pj",
    "pj-restart-a",
    "pj-restart-b",
    "bs-sha-offer",
)
MD5_USERS = _users(
    *(f"bs-{t}-{side}" for t in TRANSPORTS for side in "ab"),
    *(f"mix-{t}-{peer}" for t in TRANSPORTS for peer in ("pj", "bs")),
    "nobody-bs",
)


@pytest.fixture(scope="module")
def vx_sha256_md5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipServer]:
    vx = start_voxswitch(tmp_path_factory.mktemp("vx-sha256-md5"), ["SHA-256", "MD5"], PJSIP_USERS)
    yield vx
    stop_voxswitch(vx)


@pytest.fixture(scope="module")
def vx_md5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipServer]:
    vx = start_voxswitch(tmp_path_factory.mktemp("vx-md5"), ["MD5"], MD5_USERS)
    yield vx
    stop_voxswitch(vx)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """For the peers' own TLS listeners: Voxswitch relays a MESSAGE over a registered phone's
    connection, but PJSIP and baresip listen for TLS anyway."""
    return make_self_signed(tmp_path_factory.mktemp("tls"))


# -- helpers -----------------------------------------------------------------------------------


def pjsip_phone(agent: PjsuaAgent, vx: SipServer, user: str, transport: str, algorithm: str) -> str:
    """Register ``user`` from ``agent`` over ``transport``. For md5 the credential answers MD5
    challenges only (it skips a SHA-256 one before it); for sha-256 it is a password, which PJSIP
    spends on the first challenge -- pjsua2 cannot pin SHA-256 -- so the tests read the wire."""
    account = agent.add_account(
        vx.aor(user, transport),
        registrar=vx.uri(transport),
        username=user,
        password=vx.passwords[user],
        realm=REALM,
        algorithm="md5" if algorithm == "md5" else None,
        transport=transport,
    )
    agent.wait_registered(account, timeout=5)
    return account


def baresip_phone(bs: Baresip, vx: SipServer, user: str, transport: str) -> str:
    """Register ``user`` over ``transport``; everything goes via Voxswitch as outbound proxy, which
    is how baresip picks the transport of a MESSAGE (see `Baresip.send_message`)."""
    aor = f"sip:{user}@{vx.address(transport)}"
    bs.add_account(f"{aor};transport={transport}", password=vx.passwords[user], outbound=vx.uri(transport))
    bs.wait_registered(aor, timeout=5)
    return aor


def target(vx: SipServer, user: str, transport: str) -> str:
    """A Request-URI for ``user`` at Voxswitch, without parameters (baresip's outbound picks the
    transport)."""
    return f"sip:{user}@{vx.address(transport)}"


def accepted(messages: list[SipMessage], method: str) -> SipMessage:
    """The ``method`` request a peer sent that got a 2xx (from the peer's own SIP log)."""
    ok = {
        (m.call_id, m.cseq)
        for m in messages
        if not m.is_request and m.direction == "received" and m.method == method and 200 <= (m.status or 0) < 300
    }
    found = [m for m in messages if m.is_request and m.direction == "sent" and (m.call_id, m.cseq) in ok]
    assert found, f"no {method} answered 2xx in the peer's log"
    return found[-1]


def assert_digest(request: SipMessage, header: str, user: str, algorithm: str, password: str) -> None:
    """The credentials Voxswitch accepted are ``algorithm``'s, and right by RFC 7616's arithmetic
    (tests/peers/digest.py, not our server's code)."""
    value = request.header(header)
    assert value, f"{request.start_line} carries no {header}"
    params = digest.parse_digest(value)
    assert params.get("algorithm", "MD5").upper() == algorithm.upper(), value
    method = request.method
    assert digest.verify_authorization(value, method, password, username=user, realm=REALM), value


def assert_options_answer(response: SipMessage) -> None:
    assert response.status == 200, response.start_line
    assert response.method == "OPTIONS"
    allow = {m.strip().upper() for m in (response.header("Allow") or "").split(",") if m.strip()}
    assert allow == ALLOW, response.header("Allow")


def assert_delivered(sent: Exchange, received: Exchange, text: str) -> None:
    """baresip sent ``text``, got 200, and the other baresip got exactly ``text`` and said 200."""
    assert sent.response.status == 200, sent.response.start_line
    assert received.request.body == text
    assert received.request.header("Content-Type") == "text/plain"
    assert received.response.status == 200, received.response.start_line


def texts(transport: str, sender: str) -> str:
    # Non-ASCII and quotes on purpose: the body is relayed as octets, Content-Length in octets.
    return f'hello from {sender} over {transport}: "ünïcödé" ✓ 1+1=2; <ok>'


# -- PJSIP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", PJSIP_ALGORITHMS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pjsip_registers_pings_and_exchanges_messages(
    tmp_path: Path, vx_sha256_md5: SipServer, certs: TlsFiles, transport: str, algorithm: str
) -> None:
    vx = vx_sha256_md5
    a_user, b_user = f"pj-{transport}-{algorithm}-a", f"pj-{transport}-{algorithm}-b"
    tls = {"cert_file": certs.cert_file, "key_file": certs.key_file}
    with (
        PjsuaAgent(tmp_path, name="a", transports={transport: 0}, tls=tls) as a,
        PjsuaAgent(tmp_path, name="b", transports={transport: 0}, tls=tls) as b,
    ):
        alice = pjsip_phone(a, vx, a_user, transport, algorithm)
        bob = pjsip_phone(b, vx, b_user, transport, algorithm)

        answer = a.send_options(alice, vx.uri(transport))
        assert answer["code"] == 200, answer
        assert_options_answer(parse_message(answer["message"]))

        for sender, s_acc, receiver, r_user in ((a, alice, b, b_user), (b, bob, a, a_user)):
            text = texts(transport, sender.name)
            since_s, since_r = sender.mark(), receiver.mark()
            sender.send_message(s_acc, vx.aor(r_user, transport), text)
            got = receiver.wait_event("message_received", timeout=5, since=since_r)
            assert got["body"] == text
            assert got["content_type"] == "text/plain"
            assert sender.wait_event("message_status", timeout=5, since=since_s)["code"] == 200

        since = a.mark()
        a.send_message(alice, vx.aor("nobody-pj", transport), "registered nowhere")
        assert a.wait_event("message_status", timeout=5, since=since)["code"] == 480
        a.send_message(alice, vx.aor("no-such-device", transport), "no such account")
        assert a.wait_event("message_status", timeout=5, since=since)["code"] == 404

        for agent, user in ((a, a_user), (b, b_user)):
            log = agent.sip_messages()
            assert {m.transport for m in log} == {transport.upper()}
            register = accepted(log, "REGISTER")
            assert_digest(register, "Authorization", user, algorithm, vx.passwords[user])
            message = accepted(log, "MESSAGE")
            assert_digest(message, "Proxy-Authorization", user, algorithm, vx.passwords[user])


# -- baresip -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_baresip_registers_pings_and_exchanges_messages(
    tmp_path: Path, vx_md5: SipServer, certs: TlsFiles, transport: str
) -> None:
    vx = vx_md5
    c_user, d_user = f"bs-{transport}-a", f"bs-{transport}-b"
    to_d, to_c, to_nobody = (target(vx, u, transport) for u in (d_user, c_user, "nobody-bs"))
    with (
        Baresip(tmp_path, name="carol", contacts=[to_d, to_nobody], tls_combined_pem=certs.combined_file) as c,
        Baresip(tmp_path, name="dave", contacts=[to_c], tls_combined_pem=certs.combined_file) as d,
    ):
        baresip_phone(c, vx, c_user, transport)
        baresip_phone(d, vx, d_user, transport)

        ping = c.send_options(target(vx, "ping", transport))
        assert ping.request.transport == transport.upper()
        assert_options_answer(ping.response)

        for sender, receiver, to in ((c, d, to_d), (d, c, to_c)):
            text = texts(transport, sender.name)
            since = receiver.sip_mark()
            sent = sender.send_message(to, text)
            assert_delivered(sent, receiver.wait_message(since=since), text)

        assert c.send_message(to_nobody, "registered nowhere").response.status == 480

        for bs, user in ((c, c_user), (d, d_user)):
            log = bs.sip_messages()
            assert {m.transport for m in log} == {transport.upper()}
            assert_digest(accepted(log, "REGISTER"), "Authorization", user, "MD5", vx.passwords[user])
            assert_digest(accepted(log, "MESSAGE"), "Proxy-Authorization", user, "MD5", vx.passwords[user])


def test_baresip_cannot_register_where_sha256_is_offered(tmp_path: Path, vx_sha256_md5: SipServer) -> None:
    """Pins why baresip gets an MD5-only server: libre 1.1 fails a 401 that names any algorithm it
    lacks, though RFC 8760 §2.4 has a client use the first challenge it supports (MD5, second)."""
    vx = vx_sha256_md5
    with Baresip(tmp_path) as bs:
        bs.add_account(vx.aor("bs-sha-offer"), password=vx.passwords["bs-sha-offer"])
        event = bs.wait_event(["REGISTER_OK", "REGISTER_FAIL"])
        challenges = [m for m in bs.sip_messages() if m.status == 401]
    assert event["type"] == "REGISTER_FAIL" and "not implemented" in event["param"].lower()
    offered = [digest.parse_digest(c)["algorithm"] for c in challenges[0].header_values("WWW-Authenticate")]
    assert offered == ["SHA-256", "MD5"]


# -- PJSIP and baresip together ------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pjsip_and_baresip_message_each_other(
    tmp_path: Path, vx_md5: SipServer, certs: TlsFiles, transport: str
) -> None:
    vx = vx_md5
    pj_user, bs_user = f"mix-{transport}-pj", f"mix-{transport}-bs"
    tls = {"cert_file": certs.cert_file, "key_file": certs.key_file}
    to_pj = target(vx, pj_user, transport)
    with (
        PjsuaAgent(tmp_path, name="pjsip", transports={transport: 0}, tls=tls) as pj,
        Baresip(tmp_path, name="baresip", contacts=[to_pj], tls_combined_pem=certs.combined_file) as bs,
    ):
        account = pjsip_phone(pj, vx, pj_user, transport, "md5")
        baresip_phone(bs, vx, bs_user, transport)

        text = texts(transport, "baresip")
        since = pj.mark()
        sent = bs.send_message(to_pj, text)
        assert sent.response.status == 200, sent.response.start_line
        got = pj.wait_event("message_received", timeout=5, since=since)
        assert got["body"] == text
        assert bs_user in got["from_uri"]

        text = texts(transport, "pjsip")
        since, mark = bs.sip_mark(), pj.mark()
        pj.send_message(account, vx.aor(bs_user, transport), text)
        received = bs.wait_message(since=since)
        assert received.request.body == text
        assert received.response.status == 200
        assert pj.wait_event("message_status", timeout=5, since=mark)["code"] == 200


def test_a_phone_that_restarted_still_gets_messages(tmp_path: Path, vx_sha256_md5: SipServer) -> None:
    """A phone that dies without un-REGISTERing and comes back from another port has two bindings
    until the old one expires; a MESSAGE must still reach it (RFC 3261 §16.6: to every contact)."""
    vx = vx_sha256_md5
    with PjsuaAgent(tmp_path, name="a") as a:
        alice = pjsip_phone(a, vx, "pj-restart-a", "udp", "sha-256")
        with PjsuaAgent(tmp_path, name="b-before") as gone:
            pjsip_phone(gone, vx, "pj-restart-b", "udp", "sha-256")
            gone.close(graceful=False)  # no un-REGISTER: its binding stays
        with PjsuaAgent(tmp_path, name="b-after") as b:
            pjsip_phone(b, vx, "pj-restart-b", "udp", "sha-256")
            a.send_message(alice, vx.aor("pj-restart-b"), "are you back?")
            assert b.wait_event("message_received", timeout=5)["body"] == "are you back?"
            assert a.wait_event("message_status", timeout=5)["code"] == 200
