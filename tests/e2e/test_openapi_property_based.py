"""Schemathesis against the running server's own /openapi.json: no 500s, no response off its schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.e2e.conftest import Server, start_server, stop_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    server = start_server(Path(tmp_path_factory.mktemp("schemathesis")))
    key = server.cli("apikey", "create", "admin@example.com", "--name", "schemathesis").stdout.strip()
    try:
        yield server, key
    finally:
        stop_server(server)


def test_no_server_errors_and_responses_match_their_schema(live: tuple[Server, str]) -> None:
    """Every operation, fuzzed from its own declared schema (driven directly, not by the pytest plugin)."""
    server, key = live
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            # An API key, so that even a generated `POST /api/auth/logout` cannot end the run's session.
            response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
            # 503 is a documented answer (an unconfigured provider); a 500 never is.
            assert response.status_code != 500, f"{case.method} {case.formatted_path}: 500 {response.text[:500]}"
            case.validate_response(response, checks=[response_schema_conformance, content_type_conformance])

        try:
            fuzz()
        except Exception as exc:  # collect every failing operation, then report them together
            failures[operation.label] = str(exc)[:2000]
    assert operations >= 20
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def test_the_schema_covers_every_surface(live: tuple[Server, str]) -> None:
    server, _ = live
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for path in ("/auth/login", "/api/auth/login", "/api/v1/auth", "/api/users", "/health", "/readiness", "/status"):
        assert path in paths
