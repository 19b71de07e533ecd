"""One server with its embedded store for the whole session: tests isolate themselves by using
identifiers of their own (see `unique`), not by restarting the store."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.server_process import RemoteServer, ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | RemoteServer]:
    """Our own server, or the one the conformance runner names in FHIR_SERVER_URL."""
    remote = os.environ.get("FHIR_SERVER_URL")
    if remote:
        yield RemoteServer(remote)
        return
    process = ServerProcess(tmp_path_factory.mktemp("store") / "data").start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def fhir(server: ServerProcess) -> Iterator[httpx.Client]:
    """A FHIR JSON client on the base URL, with the platform's token."""
    headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json", **server.headers}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60.0) as client:
        yield client


@pytest.fixture
def unique() -> str:
    """A value no other test uses, for identifiers and names that scope a test's data."""
    return uuid.uuid4().hex[:12]
