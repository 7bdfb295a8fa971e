"""Client-side digest: Voxswitch registers to a trunk (SIPp as the registrar, checking MD5 itself)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.peers.sipp import SippConfig, SippProcess, scenario
from tests.sip_e2e.conftest import running
from voxswitch.engine.trunk import RegState, TrunkConfig, TrunkRegistration

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_registers_with_the_trunk_answering_its_digest_challenge(
    tmp_path: Path, sip_settings: Callable[..., Any], transport: str
) -> None:
    keys = {"realm": "trunk.example", "user": "acct77", "password": "trunk-pass-77"}
    with SippProcess(SippConfig(scenario("uas_registrar_digest"), transport=transport, keys=keys), tmp_path) as sipp:
        async for vx in running(sip_settings()):
            trunk = TrunkRegistration(
                vx.state.engine.sip.stack,
                TrunkConfig(
                    host="127.0.0.1",
                    port=sipp.port,
                    transport=transport.upper(),
                    username="acct77",
                    password="trunk-pass-77",
                    register=True,
                    expires=300,
                ),
            )
            trunk.start()
            for _ in range(100):
                if trunk.state is RegState.REGISTERED:
                    break
                await asyncio.sleep(0.05)
            assert trunk.state is RegState.REGISTERED, trunk.last_error
            assert trunk.registered_until is not None
            await trunk.stop()
        result = await asyncio.to_thread(sipp.wait, 5)
    assert result.ok, result.describe()  # SIPp's own <verifyauth> accepted our MD5 answer
    authorization = result.credentials("REGISTER")
    assert any('username="acct77"' in a for a in authorization if a)


async def test_wrong_trunk_password_leaves_it_failed_with_the_reason(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    keys = {"realm": "trunk.example", "user": "acct77", "password": "trunk-pass-77"}
    with SippProcess(SippConfig(scenario("uas_registrar_digest"), keys=keys), tmp_path) as sipp:
        async for vx in running(sip_settings()):
            trunk = TrunkRegistration(
                vx.state.engine.sip.stack,
                TrunkConfig(host="127.0.0.1", port=sipp.port, username="acct77", password="wrong", register=True),
            )
            trunk.start()
            for _ in range(100):
                if trunk.state is RegState.FAILED:
                    break
                await asyncio.sleep(0.05)
            assert trunk.state is RegState.FAILED and trunk.last_error is not None
            assert trunk.last_error.startswith("403")
            await trunk.stop()
