"""SIPp against Voxswitch's registrar: REGISTER with MD5 digest (right and wrong password) and
OPTIONS, over UDP and TCP (issue #3). SIPp 3.6 knows only MD5 and this build has no TLS; PJSIP and
baresip, over every transport and with SHA-256 where the peer has it, are in test_phone_interop.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import PASSWORDS, SipServer, start_voxswitch, stop_voxswitch
from tests.peers.sipp import SippConfig, Transport, run_sipp, scenario

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def vx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipServer]:
    server = start_voxswitch(tmp_path_factory.mktemp("vx"), ["MD5"])
    yield server
    stop_voxswitch(server)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_registers_with_md5_digest_and_pings_with_options(
    tmp_path: Path, vx: SipServer, transport: Transport
) -> None:
    reg = run_sipp(
        SippConfig(
            scenario("uac_register_digest"),
            target=vx.address(),
            transport=transport,
            service="1001",
            auth_user="1001",
            auth_password=PASSWORDS["1001"],
            keys={"expires": "300"},
            calls=5,
        ),
        tmp_path,
        name=f"register-{transport}",
    )
    assert reg.ok and reg.successful == 5, reg.describe()
    ok = [m for m in reg.messages if getattr(m, "status", None) == 200]
    assert ok and "expires=300" in str(ok[-1])
    wrong = run_sipp(
        SippConfig(
            scenario("uac_register_digest"),
            target=vx.address(),
            transport=transport,
            service="1001",
            auth_user="1001",
            auth_password="not-the-password",
            keys={"expires": "300"},
            recv_timeout_ms=2000,
        ),
        tmp_path,
        name=f"wrong-{transport}",
    )
    assert not wrong.ok
    options = run_sipp(
        SippConfig(scenario("uac_options"), target=vx.address(), transport=transport, service="1001", calls=20),
        tmp_path,
        name=f"options-{transport}",
    )
    assert options.ok and options.successful == 20, options.describe()
