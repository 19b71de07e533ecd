"""Each kind of interaction writes one AuditEvent (issue 13) with the right agent, entities and
outcome: reads, searches, histories, writes, bundles, operations, HL7 v2 over MLLP, and the
refusals (401 without a token, 403 for a record that refuses the caller, 404 for a hidden
document). Each event is looked for in the patient's trail, as the platform reads it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from tests.access.world import World, new_finess, open_world
from tests.audit.trail import new_events, query, references, requestor_id, subtype, trail
from tests.hl7v2.test_intake_store import personalised
from tests.hl7v2.test_server_endpoints import send
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")
    world.practitioner("N")
    world.system("H", new_finess())
    world.patient_id, world.ins = world.patient()
    world.consent(world.patient_id, "permit", world.professionals["A"])
    world.deposit("plain", "H")
    world.deposit("masked", "H", labels=("MASQUE_PS",))
    yield world
    world.http.close()


def only(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1, [subtype(e) for e in events]
    return events[0]


def test_a_read_names_the_reader_the_patient_and_the_document(world: World) -> None:
    doc = world.documents["plain"].id
    response, events = new_events(world, world.patient_id, lambda: world.get("A", f"/DocumentReference/{doc}"))
    assert response.status_code == 200
    event = only(events)
    assert (subtype(event), event["action"], event["outcome"]) == ("read", "R", "0")
    assert requestor_id(event) == world.professionals["A"].idnatps
    assert references(event) == {f"Patient/{world.patient_id}", f"DocumentReference/{doc}"}
    assert event["recorded"] >= event["period"]["start"]
    assert event["source"]["observer"]["display"]


def test_a_vread_and_the_instance_history(world: World) -> None:
    doc = world.documents["plain"].id
    _, events = new_events(world, world.patient_id, lambda: world.get("A", f"/DocumentReference/{doc}/_history/1"))
    assert (subtype(only(events)), only(events)["outcome"]) == ("vread", "0")
    _, events = new_events(world, world.patient_id, lambda: world.get("A", f"/DocumentReference/{doc}/_history"))
    assert subtype(only(events)) == "history-instance"
    assert f"DocumentReference/{doc}" in references(only(events))


def test_a_search_keeps_its_query_and_what_it_returned(world: World) -> None:
    response, events = new_events(world, world.patient_id, lambda: world.get(
        "A", "/DocumentReference", params={"patient": world.patient_id, "_count": "50"}))
    returned = {e["fullUrl"].split("/fhir/")[1] for e in response.json()["entry"]}
    event = only(events)
    assert (subtype(event), event["action"]) == ("search-type", "E")
    assert f"patient={world.patient_id}" in (query(event) or "")
    assert returned <= references(event)
    assert f"DocumentReference/{world.documents['masked'].id}" not in references(event)


def test_writes_name_what_they_wrote(world: World) -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                   "subject": {"reference": f"Patient/{world.patient_id}"}}
    created, events = new_events(world, world.patient_id, lambda: world.request("platform", "POST", "/Observation",
                                                                                    json=observation))
    assert created.status_code == 201, created.text
    reference = f"Observation/{created.json()['id']}"
    assert (subtype(only(events)), only(events)["action"], reference in references(only(events))) == ("create", "C", True)
    body = {**created.json(), "status": "amended"}
    _, events = new_events(world, world.patient_id, lambda: world.request("platform", "PUT", f"/{reference}", json=body))
    assert (subtype(only(events)), only(events)["action"], reference in references(only(events))) == ("update", "U", True)
    patch = [{"op": "replace", "path": "/status", "value": "corrected"}]
    _, events = new_events(world, world.patient_id, lambda: world.request(
        "platform", "PATCH", f"/{reference}", json=patch, headers={"Content-Type": "application/json-patch+json"}))
    assert subtype(only(events)) == "patch"
    _, events = new_events(world, world.patient_id, lambda: world.request("platform", "DELETE", f"/{reference}"))
    assert (subtype(only(events)), only(events)["action"], reference in references(only(events))) == ("delete", "D", True)


def test_a_transaction_and_a_batch(world: World) -> None:
    entry = {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "height"},
                          "subject": {"reference": f"Patient/{world.patient_id}"}},
             "request": {"method": "POST", "url": "Observation"}}
    for kind in ("transaction", "batch"):
        response, events = new_events(world, world.patient_id, lambda: world.request(
            "platform", "POST", "", json={"resourceType": "Bundle", "type": kind, "entry": [entry]}))
        assert response.status_code == 200, response.text
        written = response.json()["entry"][0]["response"]["location"].split("/_history")[0]
        assert (subtype(only(events)), written in references(only(events))) == (kind, True)


def test_an_operation(world: World) -> None:
    response, events = new_events(world, world.patient_id, lambda: world.get(
        "A", f"/Patient/{world.patient_id}/$advance-directives"))
    assert response.status_code < 500, response.text
    event = only(events)
    assert (subtype(event), event["action"], requestor_id(event)) == ("operation", "E", world.professionals["A"].idnatps)


def test_a_refused_record_is_a_minor_failure_in_its_trail(world: World) -> None:
    doc = world.documents["plain"].id
    response, events = new_events(world, world.patient_id, lambda: world.get("N", f"/DocumentReference/{doc}"))
    assert response.status_code == 403
    event = only(events)
    assert (subtype(event), event["outcome"], requestor_id(event)) == ("read", "4", world.professionals["N"].idnatps)
    assert references(event) == {f"Patient/{world.patient_id}"}
    assert "403" in event["outcomeDesc"]


def test_a_hidden_document_is_a_404_that_names_nothing_hidden(world: World) -> None:
    doc = world.documents["masked"].id
    response, events = new_events(world, world.patient_id, lambda: world.get("A", f"/DocumentReference/{doc}"))
    assert response.status_code == 404
    event = only(events)
    assert (subtype(event), event["outcome"]) == ("read", "4")
    assert references(event) == {f"Patient/{world.patient_id}"}


def test_no_token_is_a_refused_login(world: World) -> None:
    marker = uuid.uuid4().hex
    since = trail(world)[0]["recorded"]
    response = httpx.get(f"{world.server.base_url}/Patient", params={"name": marker})
    assert response.status_code == 401
    logins = [e for e in trail(world, date=f"ge{since}") if marker in e.get("outcomeDesc", "")]
    event = only(logins)
    assert (event["type"]["code"], subtype(event), event["outcome"]) == ("110114", "110122", "4")
    assert event["agent"][0]["who"] == {"display": "anonymous"}


def test_an_hl7_message_over_mllp(world: World, server: ServerProcess) -> None:
    message = personalised("adt_a01.hl7", uuid.uuid4().hex[:8])
    control = er7.parse(message).text("MSH-10")
    since = trail(world)[0]["recorded"]
    [ack] = send(server, message)
    assert ack.text("MSA-1") == "AA"
    [event] = [e for e in trail(world, date=f"ge{since}") if e["type"]["code"] == "110107"
               and control in e["entity"][-1].get("description", "")]
    assert (subtype(event), event["outcome"]) == ("A01", "0")
    assert any(r.startswith("Patient/") for r in references(event))
