"""One server with its embedded store for the whole session: tests isolate themselves by using
identifiers of their own (see `unique`), not by restarting the store."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests import store_pool
from tests.api.test_store_lifecycle import store_url
from tests.mutation import keep_selected
from tests.server_process import (
    IN_PROCESS,
    SESSION_WORKERS,
    InProcessServer,
    ServerProcess,
    dedicated_server,
)


# `make test-all` sets it: the tests marked `heavy` run there only (../shared/DECISIONS.md: make
# test stays under 15 minutes on two cores, heavy series go in test-all).
HEAVY = os.environ.get("FHIR_TEST_HEAVY") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep_selected(config, items)
    if SESSION_WORKERS > 1:
        keep_session_server_tests(config, items)
    if not HEAVY:
        leave_heavy_tests(config, items)


def leave_heavy_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    heavy = [item for item in items if item.get_closest_marker("heavy") is not None]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if item.get_closest_marker("heavy") is None]


def keep_session_server_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With FHIR_TEST_WORKERS (`make test-all`'s rerun against a server with several workers), only
    the tests that reach the session's server: the others would run again exactly as before."""
    def uses_session_server(item: pytest.Item) -> bool:
        definitions = getattr(item, "_fixtureinfo", None)
        chain = definitions.name2fixturedefs.get("server") if definitions is not None else None
        return bool(chain) and chain[-1].func is server.__wrapped__  # type: ignore[attr-defined]

    kept = [item for item in items if uses_session_server(item)]
    dropped = [item for item in items if not uses_session_server(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | InProcessServer]:
    """Our own server: a child process, or in-process with FHIR_TEST_INPROCESS=1."""
    if IN_PROCESS and store_pool.SIZE:
        with store_pool.borrowed_store() as (url, database, data_dir):
            pooled = InProcessServer(data_dir, store_url=url, env={"FHIR_DATABASE": database}).start()
            yield pooled
            pooled.stop()
        return
    process = dedicated_server(tmp_path_factory.mktemp("store") / "data", workers=SESSION_WORKERS).start()
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


@pytest.fixture
def store(server: ServerProcess) -> Iterator[Any]:
    """The clinical database of the session's server, for tests that check what is stored."""
    if isinstance(server, InProcessServer):
        # In-process (`make mutate`): the store it borrowed from the pool, or the one it started.
        url = server.store_url or (server.store.url if server.store is not None else store_url(server.data_dir))
        database = server.env.get("FHIR_DATABASE") or os.environ.get("FHIR_DATABASE", "fhir")
    else:
        url, database = store_url(server.data_dir), os.environ.get("FHIR_DATABASE", "fhir")
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        yield client[database]
    finally:
        client.close()
