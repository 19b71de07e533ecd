"""What the outbox dispatcher asks the store for after a commit (issue 18), counted by the command
recorder (FHIR_COMMAND_LOG, fhir_server/storage/command_log.py) of a server of the test's own.

A transaction's events are delivered in one dispatch round: they are matched to subscriptions with
one look-up of the subscribers, and taken out of the outbox with one delete command, however many
resources it wrote (before: two look-ups and one delete per resource). Its lease is renewed once
half of it has run, not at every round (each commit wakes it). A document deposited for a patient
without an e-mail address asks the mail queue once whether it was told, not twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mhd.documents import patient, provide_bundle
from tests.server_process import ServerProcess, recorded_commands, recording_server

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    with recording_server(tmp_path_factory.mktemp("dispatch")) as recorded:
        yield recorded


def _delivered(log: Path, start: int, events: int) -> list[dict[str, Any]]:
    """The commands recorded from `start` once `events` events have left the outbox."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        lines = recorded_commands(log, start)
        removed = sum(len(line.get("deletes") or []) for line in lines
                      if line["command"] == "delete" and line["collection"] == "outbox")
        if removed >= events:
            time.sleep(0.3)  # what the round does after its delete (the deliveries' wake-up)
            return recorded_commands(log, start)
        time.sleep(0.05)
    raise AssertionError(f"{events} events not delivered within {TIMEOUT} s")


def _background(lines: list[dict[str, Any]], command: str, collection: str, code: str = "") -> int:
    """Commands no request sent (the dispatcher's), of that kind, sent from `code` if named."""
    return sum(1 for line in lines if line["request"] is None and line["command"] == command
               and line["collection"] == collection and any(code in where for where in line.get("where") or []))


def test_one_subscription_look_up_and_one_removal_per_transaction(recorded: tuple[ServerProcess, Path]) -> None:
    server, log = recorded
    observations = 6
    subject = "urn:uuid:" + str(uuid.uuid4())
    entries = [{"fullUrl": subject, "resource": patient(str(uuid.uuid4().int)[:13]),
                "request": {"method": "POST", "url": "Patient"}}]
    entries += [{"fullUrl": f"urn:uuid:{uuid.uuid4()}",
                 "resource": {"resourceType": "Observation", "status": "final", "code": {"text": f"poids {i}"},
                              "subject": {"reference": subject}},
                 "request": {"method": "POST", "url": "Observation"}} for i in range(observations)]
    start = log.stat().st_size
    response = server.post(server.base_url, json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert response.status_code == 200, response.text
    lines = _delivered(log, start, 1 + observations)
    # One round (two if the dispatcher woke between two reads): not two look-ups per event.
    assert 1 <= _background(lines, "find", "subscribers", "subscriptions/matching.py") <= 2
    assert 1 <= _background(lines, "delete", "outbox") <= 2


def test_a_document_for_a_patient_without_e_mail_asks_the_mail_queue_once(recorded: tuple[ServerProcess, Path]) -> None:
    server, log = recorded
    start = log.stat().st_size
    created = server.post(f"{server.base_url}/Patient", json=patient(str(uuid.uuid4().int)[:13]))
    assert created.status_code == 201, created.text
    _delivered(log, start, 1)
    start = log.stat().st_size
    bundle = provide_bundle({"reference": f"Patient/{created.json()['id']}"}, f"1.2.250.1.999.{uuid.uuid4().int % 10**12}")
    response = server.post(server.base_url, json=bundle)
    assert response.status_code == 200, response.text
    lines = _delivered(log, start, len(bundle["entry"]))
    # The mail worker polls the queue meanwhile (`due`): only the notification hook's look-ups count.
    assert _background(lines, "find", "mail_sent", "mail_queue.py") == 1
    assert _background(lines, "find", "mail_queue", "known") == 1


def test_the_lease_is_not_renewed_at_every_round(recorded: tuple[ServerProcess, Path]) -> None:
    server, log = recorded
    start = log.stat().st_size
    began = time.monotonic()
    for _ in range(3):
        offset = log.stat().st_size
        created = server.post(f"{server.base_url}/Patient", json=patient(str(uuid.uuid4().int)[:13]))
        assert created.status_code == 201, created.text
        _delivered(log, offset, 1)
    lines = recorded_commands(log, start)
    assert time.monotonic() - began < 5.0, "the three rounds must fall within half a lease"
    # Three rounds in under half a lease (10 s): at most one renewal, not one per round.
    assert _background(lines, "update", "leases", "events/dispatcher.py") <= 1


def test_a_round_s_documents_are_read_together_and_each_patient_is_told(recorded: tuple[ServerProcess, Path]) -> None:
    """The e-mail notifications of one dispatch round read its documents, whether their patients
    were told, and those patients, together: not four reads per document."""
    server, log = recorded
    documents = 4
    entries: list[dict[str, Any]] = []
    for n in range(documents):
        subject = f"urn:uuid:{uuid.uuid4()}"
        person = {**patient(str(uuid.uuid4().int)[:13]),
                  "telecom": [{"system": "email", "value": f"round-{n}-{uuid.uuid4().hex[:8]}@example.org"}]}
        entries.append({"fullUrl": subject, "resource": person, "request": {"method": "POST", "url": "Patient"}})
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "DocumentReference"},
                        "resource": {"resourceType": "DocumentReference", "status": "current",
                                     "type": {"coding": [{"system": "http://loinc.org", "code": "11490-0"}]},
                                     "subject": {"reference": subject},
                                     "content": [{"attachment": {"contentType": "application/pdf",
                                                                 "url": f"https://documents.example.org/{n}.pdf"}}]}})
    start = log.stat().st_size
    response = server.post(server.base_url, json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert response.status_code == 200, response.text
    written = [e["response"]["location"].split("/")[1] for e in response.json()["entry"]
               if e["response"]["location"].startswith("DocumentReference/")]
    lines = _delivered(log, start, len(entries))
    # Every document's patient is told, once.
    queued = [document["_id"] for line in lines if line["request"] is None and line["command"] == "insert"
              and line["collection"] == "mail_queue" for document in line.get("documents") or []]
    assert sorted(queued) == sorted(f"document/{rid}/patient" for rid in written)
    # One round (two if the dispatcher woke between two reads of the outbox): one read of each kind
    # per round by the notifications (the mail worker's sending reads the queue too, apart).
    rounds = _background(lines, "delete", "outbox")
    assert 1 <= rounds <= 2
    for collection, code in (("DocumentReference", "events/notifications.py"), ("Patient", "events/notifications.py"),
                             ("mail_sent", "known"), ("mail_queue", "known")):
        assert 1 <= _background(lines, "find", collection, code) <= rounds, collection
