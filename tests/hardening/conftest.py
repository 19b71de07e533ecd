"""One server of these tests' own, shared by them all: the outbound policy unset (no
FHIR_OUTBOUND_ALLOW, as in production by default) and tiny rate-limit budgets, with 4 workers so
the budgets are seen to hold across processes (in-process mode: one).

Budgets run over an hour, so no window ends while a test spends one (windows are aligned on the
clock). Tests spend them as callers and addresses of their own (loopback addresses other than
127.0.0.1 they connect from): the platform and 127.0.0.1, which the other tests here use, stay
under them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server_process import InProcessServer, ServerProcess, dedicated_server

WORKERS = 4
CLIENT_BUDGET = 50
ADDRESS_BUDGET = 100
TOKEN_FAILURES = 3


@pytest.fixture(scope="session")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | InProcessServer]:
    server = dedicated_server(tmp_path_factory.mktemp("guarded") / "data", env={
        "FHIR_OUTBOUND_ALLOW": "",
        # A refused endpoint is `error` at once; a failure as below would take one retry.
        "FHIR_SUBSCRIPTION_ERROR_AFTER": "2",
        "FHIR_RATE_API_CLIENT": f"{CLIENT_BUDGET}/3600",
        "FHIR_RATE_API_ADDRESS": f"{ADDRESS_BUDGET}/3600",
        "FHIR_RATE_TOKEN_FAILURES": f"{TOKEN_FAILURES}/3600",
    }, workers=WORKERS).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def guarded_fhir(guarded: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json", **guarded.headers}
    with httpx.Client(base_url=guarded.base_url, headers=headers, timeout=60.0) as client:
        yield client
