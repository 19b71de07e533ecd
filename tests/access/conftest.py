"""One server for the hook tests: it loads tests/access/hidden_tag_hooks.py through FHIR_HOOKS
and records its outbox events in a file the tests read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server_process import ServerProcess

HOOKS = "tests.access.hidden_tag_hooks"
HEADERS = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


@dataclass
class HookedServer:
    client: httpx.Client
    events: Path
    server: ServerProcess


@pytest.fixture(scope="session")
def hooked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookedServer]:
    root: Path = tmp_path_factory.mktemp("hooked")
    events = root / "events.jsonl"
    server = ServerProcess(root / "data", env={"FHIR_HOOKS": HOOKS, "TEST_OUTBOX_FILE": str(events)}).start()
    try:
        with server.client(headers=HEADERS, timeout=60.0) as client:
            yield HookedServer(client, events, server)
    finally:
        server.stop()
