"""SIPp against SIPp: the runner, the result parsing and every scenario file in tests/peers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop_selfcheck.conftest import PASSWORD, REALM, USER, registrar_keys
from tests.peers import digest
from tests.peers.sipp import SippConfig, SippProcess, Transport, run_sipp, scenario, sipp_features

pytestmark = [pytest.mark.interop, pytest.mark.timeout(30)]


def test_builtin_uac_calls_builtin_uas(tmp_path: Path) -> None:
    with SippProcess(SippConfig("uas"), tmp_path, name="uas") as uas:
        uac = run_sipp(SippConfig("uac", target=uas.address), tmp_path, timeout=10, name="uac")
        # The built-in uas pauses 4 s after the BYE (to absorb retransmissions) before it ends.
        answered = uas.wait(timeout=10)
    assert uac.ok, uac.describe()
    assert (uac.successful, uac.failed, uac.returncode) == (1, 0, 0)
    assert answered.ok, answered.describe()
    methods = [m.method for m in uac.messages if m.direction == "sent"]
    assert methods == ["INVITE", "ACK", "BYE"]
    assert not uas.running


def test_register_digest_md5_checked_by_verifyauth(tmp_path: Path) -> None:
    registrar = SippConfig(scenario("uas_registrar_digest"), keys=registrar_keys())
    with SippProcess(registrar, tmp_path, name="registrar") as reg:
        client = SippConfig(
            scenario("uac_register_digest"),
            target=reg.address,
            service=USER,
            auth_user=USER,
            auth_password=PASSWORD,
            keys={"expires": "60"},
        )
        uac = run_sipp(client, tmp_path, timeout=10, name="client")
        result = reg.wait(timeout=5)
    assert uac.ok, uac.describe()
    assert result.ok, result.describe()
    authorization = result.credentials("REGISTER")[0]
    assert authorization is not None
    # Our independent checker agrees with SIPp's <verifyauth>.
    assert digest.verify_authorization(authorization, "REGISTER", PASSWORD, username=USER, realm=REALM)
    assert not digest.verify_authorization(authorization, "REGISTER", "not-the-password")


def test_register_with_a_wrong_password_is_refused(tmp_path: Path) -> None:
    with SippProcess(SippConfig(scenario("uas_registrar_digest"), keys=registrar_keys()), tmp_path) as reg:
        client = SippConfig(
            scenario("uac_register_digest"),
            target=reg.address,
            service=USER,
            auth_user=USER,
            auth_password="wrong",
            keys={"expires": "60"},
        )
        uac = run_sipp(client, tmp_path, timeout=10, name="client")
        result = reg.wait(timeout=5)
    assert not uac.ok and uac.returncode == 1, uac.describe()
    assert [m.status for m in uac.received()] == [401, 403]
    assert result.failed == 1 and result.returncode == 1, result.describe()


@pytest.mark.parametrize(("status", "header"), [(401, "WWW-Authenticate"), (407, "Proxy-Authenticate")])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_invite_challenge_answer_and_play(tmp_path: Path, status: int, header: str, transport: Transport) -> None:
    uas_config = SippConfig(
        scenario("uas_challenge_answer_play"),
        transport=transport,
        template={"status": str(status), "reason": "Unauthorized", "challenge_header": header},
        keys={"realm": REALM, "algorithm": "MD5"},
    )
    with SippProcess(uas_config, tmp_path, name="uas") as uas:
        caller = SippConfig(
            scenario("uac_invite_digest_play"),
            target=uas.address,
            transport=transport,
            service="bob",
            auth_user=USER,
            auth_password=PASSWORD,
            call_duration_ms=500,
        )
        uac = run_sipp(caller, tmp_path, timeout=10, name="uac")
        answered = uas.wait(timeout=5)
    assert uac.ok, uac.describe()
    assert answered.ok, answered.describe()
    invites = answered.received("INVITE")
    assert len(invites) == 2
    credentials = invites[1].header("Proxy-Authorization" if status == 407 else "Authorization")
    assert credentials and digest.verify_authorization(credentials, "INVITE", PASSWORD, username=USER)


@pytest.mark.parametrize(("status", "reason"), [(486, "Busy Here"), (503, "Service Unavailable")])
def test_reject(tmp_path: Path, status: int, reason: str) -> None:
    uas_config = SippConfig(scenario("uas_reject"), template={"status": str(status), "reason": reason})
    with SippProcess(uas_config, tmp_path, name="uas") as uas:
        uac = run_sipp(SippConfig("uac", target=uas.address), tmp_path, timeout=10, name="uac")
        rejected = uas.wait(timeout=5)
    assert rejected.ok, rejected.describe()
    assert (uac.failed, uac.returncode) == (1, 1), uac.describe()
    assert uac.received()[-1].status == status


def test_options(tmp_path: Path) -> None:
    with SippProcess(SippConfig(scenario("uas_options")), tmp_path, name="uas") as uas:
        uac = run_sipp(SippConfig(scenario("uac_options"), target=uas.address, service="ping"), tmp_path, timeout=10)
        answered = uas.wait(timeout=5)
    assert uac.ok and answered.ok, uac.describe() + answered.describe()


def test_stopping_an_idle_uas_reports_no_calls(tmp_path: Path) -> None:
    uas = SippProcess(SippConfig(scenario("uas_registrar")), tmp_path, name="idle")
    with uas:
        assert uas.running
        result = uas.stop(grace=1.0)
    assert not uas.running
    assert result.successful == 0 and not result.ok
    assert "sipp exit" in result.describe()


def test_timeout_kills_sipp(tmp_path: Path) -> None:
    uas = SippProcess(SippConfig(scenario("uas_registrar")), tmp_path, name="waiting")
    with uas:
        result = uas.wait(timeout=0.5)
    assert result.timed_out and not result.ok
    assert not uas.running


def test_features_are_read_from_the_banner() -> None:
    features = sipp_features()
    assert "PCAP" in features  # play_pcap_audio, which the answer-and-play scenarios need
    if "TLS" not in features:
        with pytest.raises(RuntimeError, match="without OpenSSL"):
            SippProcess(SippConfig("uas", transport="tls"), Path("/nonexistent"))
