"""What the audit trail's group commit sends the store (issue 18), counted by the command recorder
(FHIR_COMMAND_LOG) of a server of the test's own: a request alone is audited with one journaled
insert, not an insert and a transaction's commit; the event is stored before the answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_server.audit.writer import GROUP_COMMIT
from tests.server_process import ServerProcess, recorded_commands, recording_server


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    with recording_server(tmp_path_factory.mktemp("audit-round-trips")) as recorded:
        yield recorded


def _audit_commands(log: Path, start: int) -> list[tuple[str, Any]]:
    return [(line["command"], line["collection"]) for line in recorded_commands(log, start)
            if line["request"] == GROUP_COMMIT]


def test_a_request_alone_is_audited_with_one_insert(recorded: tuple[ServerProcess, Path]) -> None:
    server, log = recorded
    created = server.post(f"{server.base_url}/Observation",
                          json={"resourceType": "Observation", "status": "final", "code": {"text": "alone"}})
    assert created.status_code == 201, created.text
    time.sleep(0.5)  # the dispatcher's after-commit work, which is not audited
    start = log.stat().st_size
    read = server.get(f"{server.base_url}/Observation/{created.json()['id']}")
    assert read.status_code == 200
    assert _audit_commands(log, start) == [("insert", "audit_events")]
    # Written before the answer: the trail already shows the read.
    trail = server.get(f"{server.base_url}/AuditEvent", params={"entity": f"Observation/{created.json()['id']}"})
    assert trail.status_code == 200, trail.text
    actions = [e["resource"].get("action") for e in trail.json().get("entry") or []]
    assert "R" in actions and "C" in actions, actions
