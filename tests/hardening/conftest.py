"""One server of these tests' own, shared by them all: the outbound policy unset (no
FHIR_OUTBOUND_ALLOW, as in production by default) and tiny rate-limit budgets, with 4 workers so
the budgets are seen to hold across processes (in-process mode: one)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server_process import InProcessServer, ServerProcess, dedicated_server

WORKERS = 4


@pytest.fixture(scope="session")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | InProcessServer]:
    server = dedicated_server(tmp_path_factory.mktemp("guarded") / "data", env={
        "FHIR_OUTBOUND_ALLOW": "",
        # A refused endpoint is `error` at once; a failure as below would take one retry.
        "FHIR_SUBSCRIPTION_ERROR_AFTER": "2",
    }, workers=WORKERS).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def guarded_fhir(guarded: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json", **guarded.headers}
    with httpx.Client(base_url=guarded.base_url, headers=headers, timeout=60.0) as client:
        yield client
