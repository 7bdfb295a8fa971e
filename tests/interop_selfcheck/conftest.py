"""Fixtures for the self-checks of tests/peers: tones, certificates, credentials.

These tests prove the peer helpers against the peers themselves (SIPp as registrar and answerer,
PJSIP and baresip as phones), so that integration tests against our server can trust them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers import audio, tls

REALM = "voxswitch.test"
USER = "alice"
PASSWORD = "s3cret-Pa55"
TONE_HZ = 440.0


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    """Three seconds of a 440 Hz sine, 8 kHz mono 16-bit."""
    return audio.write_tone(tmp_path / "tone440.wav", TONE_HZ, seconds=3.0)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tls.TlsFiles:
    return tls.make_self_signed(tmp_path_factory.mktemp("tls"))


def registrar_keys(algorithm: str = "MD5") -> dict[str, str]:
    """``-key`` values for uas_registrar_digest.xml / uas_registrar_challenge.xml."""
    return {"realm": REALM, "user": USER, "password": PASSWORD, "algorithm": algorithm}
