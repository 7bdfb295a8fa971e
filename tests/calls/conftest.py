"""Call tests reuse the whole-Voxswitch fixtures of tests/sip_e2e."""

from tests.sip_e2e.conftest import sip_settings  # noqa: F401  (a fixture, shared)
