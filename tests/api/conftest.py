"""Fixtures of the API tests: `pbx`, the whole app with an admin signed in (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.api.pbx import Pbx, pbx_settings, running_pbx


@pytest.fixture
async def pbx(make_settings: Callable[..., Any], database_url: str | None) -> AsyncIterator[Pbx]:
    async for p in running_pbx(pbx_settings(make_settings, database_url)):
        yield p
