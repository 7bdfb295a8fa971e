"""Whether a peer is installed, with the suite's rule: under CI a missing peer fails, else it skips.

The test command (``scripts/test``) installs every peer, so under CI (``CI`` set to true/1/yes) an
absent one is a broken environment and the test must fail, never silently skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import NoReturn

import pytest

#: How each peer gets installed; quoted in failure and skip messages.
INSTALL_HINTS = {
    "sipp": "apt-get install -y sip-tester",
    "baresip": "apt-get install -y baresip",
    "pjsua2": ".venv/bin/pip install pjsua2-python",
}


def under_ci() -> bool:
    """True when the ``CI`` environment variable says we run in continuous integration."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(what: str, hint: str) -> NoReturn:
    """Fail (under CI) or skip (elsewhere) the current test because ``what`` is not installed."""
    message = f"{what} is not installed (install it with: {hint})"
    if under_ci():
        pytest.fail(f"{message}; CI=true, so a missing peer is a failure", pytrace=False)
    pytest.skip(message)


def require_executable(name: str, peer: str) -> str:
    """The absolute path of executable ``name`` (part of ``peer``), or fail/skip the test."""
    path = shutil.which(name)
    if path is None:
        missing(name, INSTALL_HINTS.get(peer, peer))
    return path


def require_module(module: str, peer: str) -> None:
    """Fail/skip the test unless Python module ``module`` (from ``peer``) can be imported."""
    if importlib.util.find_spec(module) is None:
        missing(f"Python module {module}", INSTALL_HINTS.get(peer, peer))
