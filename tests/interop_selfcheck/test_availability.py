"""A missing peer fails the test under CI and skips it elsewhere."""

from __future__ import annotations

import pytest

from tests.peers import availability


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_missing_peer_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="no-such-peer-binary"):
        availability.require_executable("no-such-peer-binary", "sipp")
    with pytest.raises(pytest.fail.Exception, match="pip install"):
        availability.require_module("no_such_peer_module", "pjsua2")


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_missing_peer_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y sip-tester"):
        availability.require_executable("no-such-peer-binary", "sipp")


def test_present_peer_is_found() -> None:
    assert availability.require_executable("sh", "sh").endswith("/sh")
