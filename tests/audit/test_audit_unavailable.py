"""When the audit trail cannot be written, nothing leaves unaudited (issue 13, ../shared/DECISIONS.md):
the request answers 503 with an OperationOutcome and none of its data; an HL7 v2 message gets AE.

The failure is real: the server's audit store is a database the store refuses every write into
(FHIR_AUDIT_DATABASE longer than the 64 bytes MongoDB allows a database name, which the embedded
store refuses likewise), as it would refuse them when down or out of space.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hl7v2.test_intake_store import personalised
from tests.hl7v2.test_server_endpoints import send
from tests.server_process import ServerProcess

FHIR = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("audit-refused")
    server = ServerProcess(root / "data", env={"FHIR_AUDIT_DATABASE": "audit" + "x" * 80}).start()
    yield server
    server.stop()


def unavailable(response: httpx.Response) -> bool:
    return response.status_code == 503 and response.json()["resourceType"] == "OperationOutcome"


def test_a_read_answers_503_and_no_data(refusing: ServerProcess) -> None:
    marker = uuid.uuid4().hex
    headers = {**FHIR, **refusing.headers}
    # Discovery is not audited: the server is up.
    assert httpx.get(f"{refusing.base_url}/metadata").status_code == 200
    created = httpx.post(f"{refusing.base_url}/Patient", headers=headers,
                         json={"resourceType": "Patient", "name": [{"family": marker}]})
    assert unavailable(created)
    assert marker not in created.text
    found = httpx.get(f"{refusing.base_url}/Patient", params={"name": marker}, headers=headers)
    assert unavailable(found)
    assert marker not in found.text and "entry" not in found.json()


def test_refusals_and_client_events_fail_too(refusing: ServerProcess) -> None:
    assert unavailable(httpx.get(f"{refusing.base_url}/Patient"))
    event = {"resourceType": "AuditEvent", "recorded": "2026-12-01T10:00:00Z",
             "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
             "agent": [{"who": {"display": "client"}, "requestor": True}], "source": {"observer": {"display": "client"}}}
    assert unavailable(httpx.post(f"{refusing.base_url}/AuditEvent", headers={**FHIR, **refusing.headers}, json=event))


def test_an_hl7_message_gets_ae(refusing: ServerProcess) -> None:
    [ack] = send(refusing, personalised("adt_a01.hl7", uuid.uuid4().hex[:8]))
    assert (ack.text("MSA-1"), "audit trail" in ack.text("ERR-8")) == ("AE", True)
