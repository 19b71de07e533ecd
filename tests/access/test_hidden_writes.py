"""Writes by id to what the caller cannot see (issue 12: "a hidden resource answers 404 ...
exactly as one that never existed"): an update, patch or delete naming a hidden document's id
changes nothing and answers as for an id that never existed; and what opens a record to someone
(a legal representative's RelatedPerson, the Patient itself) is not a deposit any professional
may make.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.access.world import (IDNATPS_SYSTEM, PHARMACIST, World, bundle_ids, is_refusal, new_finess, new_ins,
                                not_found_shape, open_world)
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")
    world.practitioner("D", profession=PHARMACIST)
    world.practitioner("N")
    world.system("H", new_finess())
    world.system("H2", new_finess())
    world.patient_id, world.ins = world.patient()
    for name in ("A", "D"):
        world.consent(world.patient_id, "permit", world.professionals[name])
    world.deposit("masked", "A", labels=("MASQUE_PS",), author=world.professionals["A"])
    world.deposit("plain", "H")
    yield world
    world.http.close()


def _version(world: World, key: str) -> str:
    response = world.get("platform", f"/DocumentReference/{world.documents[key].id}")
    assert response.status_code == 200, response.text
    return str(response.json()["meta"]["versionId"])


def _write(world: World, caller: str, method: str, resource_id: str, body: dict | list | None) -> httpx.Response:
    headers = {"Content-Type": "application/json-patch+json"} if method == "PATCH" else {}
    return world.request(caller, method, f"/DocumentReference/{resource_id}", json=body, headers=headers)


# (caller, document hidden from them): Dr D does not see Dr A's masked document, hospital H2
# deposited nothing, Dr N is not authorised.
HIDDEN = [("D", "masked"), ("H2", "plain"), ("H", "masked"), ("N", "plain")]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(("caller", "key"), HIDDEN)
def test_a_write_by_id_to_a_hidden_document_changes_nothing(world: World, caller: str, key: str, method: str) -> None:
    document = world.documents[key]
    current = world.get("platform", f"/DocumentReference/{document.id}").json()
    bodies = {"PUT": {**current, "description": "overwritten"},
              "PATCH": [{"op": "replace", "path": "/status", "value": "entered-in-error"}], "DELETE": None}
    response = _write(world, caller, method, document.id, bodies[method])
    assert _version(world, key) == "1", response.text
    if is_refusal(response):
        return
    never = uuid.uuid4().hex
    body = bodies[method]
    other = _write(world, caller, method, never, {**body, "id": never} if isinstance(body, dict) else body)
    if method == "PUT":
        # An update naming an id that never existed may create it; one naming a hidden id must not
        # overwrite it: the collision answers 409 naming nothing hidden.
        assert response.status_code in (404, 409), response.text
        assert document.id not in response.text.replace(f"/{document.id}", "") or response.status_code == 404
    else:
        assert not_found_shape(response, document.id) == not_found_shape(other, never), (response.text, other.text)


def test_a_professional_cannot_make_someone_a_legal_representative(world: World) -> None:
    """Dr N, who may deposit but not read, writes a RelatedPerson naming an accomplice's INS as a
    parent of the patient: the accomplice must not read the record through it."""
    accomplice = new_ins()
    world.request("N", "POST", "/RelatedPerson", json={
        "resourceType": "RelatedPerson", "patient": {"reference": f"Patient/{world.patient_id}"},
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": accomplice}],
        "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "PRN"}]}]})
    world.patient_caller("accomplice", accomplice, context=world.patient_id)
    response = world.get("accomplice", "/DocumentReference", params={"patient": world.patient_id})
    assert is_refusal(response) or bundle_ids(response.json()) == set(), response.text


@pytest.mark.parametrize("caller", ["N", "A", "H"])
def test_a_professional_cannot_delete_the_patient(world: World, caller: str) -> None:
    """Deleting the Patient would end the record's status and rules with it."""
    patient, _ = world.patient()
    response = world.request(caller, "DELETE", f"/Patient/{patient}")
    assert world.get("platform", f"/Patient/{patient}").status_code == 200, response.text


def test_taking_over_an_authorised_practitioner_resource_opens_nothing(world: World) -> None:
    """The patient authorised Practitioner/{A}. Dr N adds their own IdNatPs to that shared
    Practitioner resource: they must not become Dr A for the record's rules."""
    doctor_a = world.professionals["A"]
    current = world.get("platform", f"/Practitioner/{doctor_a.practitioner_id}").json()
    taken = {**current, "identifier": [*current["identifier"],
                                       {"system": IDNATPS_SYSTEM, "value": world.professionals["N"].idnatps}]}
    world.request("N", "PUT", f"/Practitioner/{doctor_a.practitioner_id}", json=taken)
    response = world.get("N", "/DocumentReference", params={"patient": world.patient_id})
    # Dr N may have deposited in this record by now (another test's attempt): then they see their
    # own deposits, never Dr A's view.
    assert is_refusal(response) or bundle_ids(response.json()) == set(), response.text


def test_a_deleted_hidden_document_reads_as_never_existing_not_as_gone(world: World) -> None:
    """410 Gone would tell Dr D that a document they could not see existed."""
    document = world.deposit("masked_then_deleted", "A", labels=("MASQUE_PS",), author=world.professionals["A"])
    assert world.request("A", "DELETE", f"/DocumentReference/{document.id}").status_code in (200, 204)
    assert world.get("A", f"/DocumentReference/{document.id}").status_code == 410
    never = uuid.uuid4().hex
    for path in ("/DocumentReference/{}", "/DocumentReference/{}/_history/1", "/DocumentReference/{}/_history"):
        hidden = world.get("D", path.format(document.id))
        unknown = world.get("D", path.format(never))
        assert not_found_shape(hidden, document.id) == not_found_shape(unknown, never), (path, hidden.text)
    for path in ("/DocumentReference/_history", "/_history"):
        listed = world.get("D", path, params={"_since": world.started, "_count": "500"})
        assert listed.status_code == 200, listed.text
        # The submission set (List) still names the document: only entries of the document itself count.
        entries = [e for e in listed.json().get("entry", [])
                   if document.id in f"{e.get('fullUrl')} {e.get('request', {}).get('url')}"
                   or e.get("resource", {}).get("id") == document.id]
        assert entries == [], path
