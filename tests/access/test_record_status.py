"""The status of the record (issue 12, docs/ACCESS-RULES.md): an opposed record takes nothing, by
any channel (FHIR, ITI-65, /ingest/cda, HL7 v2), and nothing is half-written; a closed record
takes no deposit and opens to no professional, while the patient still reads it; a pending
record takes deposits, each readable by its depositor only until the record is active.

Each refusal has its control: the same write to an active record is accepted, so a refusal for
another reason cannot pass for the rule.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fhir_server.cli import main
from fhir_server.ingest.hl7v2 import er7
from tests.access.world import INS_NIA, RECORD_STATUS, World, bundle_ids, is_refusal, new_finess, new_ins, now, open_world
from tests.hl7v2.conftest import FACILITY, personalised
from tests.ingest.test_cda_ingest import FIXTURES as CDA_FIXTURES
from tests.server_process import ServerProcess

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}
CDA = {"Content-Type": "application/hl7-cda+xml"}
CODES = "http://example.org/fhir-server/tests/codes"


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    for name in ("A", "T", "E"):
        world.practitioner(name)
    world.emergency("E_btg", "E")
    world.system("H", new_finess())
    patients = world.patients
    patients["V"], _ = world.patient()
    patients["O"], opposed_ins = world.patient(status="opposed")
    world.patient_caller("O", opposed_ins)
    patients["K"], closed_ins = world.patient(general_practitioner=world.professionals["T"].practitioner_id)
    world.consent(patients["K"], "permit", world.professionals["A"])
    world.deposit("k_doc", "H", patients["K"])
    world.set_status(patients["K"], "closed")
    world.patient_caller("K", closed_ins)
    patients["G"], _ = world.patient(status="pending")
    world.consent(patients["G"], "permit", world.professionals["A"])
    world.deposit("g_h", "H", patients["G"])
    world.deposit("g_a", "A", patients["G"], author=world.professionals["A"])
    yield world
    world.http.close()


def _stored(world: World, resource_type: str, patient: str) -> set[str]:
    response = world.get("platform", f"/{resource_type}", params={"patient": patient, "_count": "100"})
    assert response.status_code == 200, response.text
    return bundle_ids(response.json(), resource_type)


def _binaries_holding(world: World, data: bytes, since: str) -> list[str]:
    response = world.get("platform", "/Binary/_history", params={"_since": since, "_count": "200"})
    assert response.status_code == 200, response.text
    encoded = base64.b64encode(data).decode()
    return [e["resource"]["id"] for e in response.json().get("entry", []) if e.get("resource", {}).get("data") == encoded]


def _refused_with_outcome(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.json()["resourceType"] == "OperationOutcome", response.text


# -- opposed ------------------------------------------------------------------------------------

@pytest.mark.parametrize("depositor", ["H", "A", "platform"])
def test_iti65_to_an_opposed_record_is_refused_and_writes_nothing(world: World, depositor: str) -> None:
    data = f"%PDF-1.4 opposed {uuid.uuid4().hex}\n%%EOF\n".encode()
    since = now()
    refused = world.provide(depositor, world.patients["O"], data=data)
    _refused_with_outcome(refused)
    assert _stored(world, "DocumentReference", world.patients["O"]) == set()
    assert _stored(world, "List", world.patients["O"]) == set()
    assert _binaries_holding(world, data, since) == []
    assert world.provide(depositor, world.patients["V"]).status_code == 200


def _observation(patient: str, code: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": CODES, "code": code}]}}


def _found(world: World, code: str) -> set[str]:
    response = world.get("platform", "/Observation", params={"code": f"{CODES}|{code}"})
    assert response.status_code == 200, response.text
    return bundle_ids(response.json(), "Observation")


@pytest.mark.parametrize("writer", ["A", "H", "platform"])
def test_a_fhir_create_into_an_opposed_record_is_refused(world: World, writer: str) -> None:
    code = uuid.uuid4().hex
    _refused_with_outcome(world.request(writer, "POST", "/Observation", json=_observation(world.patients["O"], code)))
    assert _found(world, code) == set()
    assert world.request(writer, "POST", "/Observation", json=_observation(world.patients["V"], code)).status_code == 201


def test_a_transaction_touching_an_opposed_record_writes_nothing_at_all(world: World) -> None:
    code = uuid.uuid4().hex
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _observation(world.patients[p], code), "request": {"method": "POST", "url": "Observation"}}
        for p in ("V", "O")]}
    _refused_with_outcome(world.request("H", "POST", "", json=bundle))
    assert _found(world, code) == set()


TAKES_DEPOSITS = {"active": True, "pending": True, "closed": False, "opposed": False}


def _patient_of_status(world: World, status: str, ins: str) -> str:
    """A record of that status; a closed one was active first, as closing happens."""
    patient, _ = world.patient(status="active" if status == "closed" else status, ins=ins)
    if status == "closed":
        world.set_status(patient, "closed")
    return patient


@pytest.mark.parametrize("status", list(TAKES_DEPOSITS))
def test_a_cda_lands_only_in_a_record_that_takes_deposits(world: World, status: str) -> None:
    """POST /ingest/cda by hospital H with the person's INS."""
    letter = (CDA_FIXTURES / "ldl_ses_discharge_letter.xml").read_bytes()
    ins = new_ins()
    patient = _patient_of_status(world, status, ins)
    root = f"1.2.250.1.999.1.1.2.{uuid.uuid4().int % 10**12}"
    # The stay's id too: an Encounter with this id in another record would be a collision (409).
    cda = letter.replace(b"262077512345678", ins.encode()).replace(b"1.2.250.1.999.1.1.2.2024", root.encode()) \
        .replace(b"SEJ-2024-000417", f"SEJ-{uuid.uuid4().hex[:12]}".encode())
    response = world.http.post(world.server.root_url + "/ingest/cda", content=cda,
                               headers={**world.headers("H"), **CDA})
    stored = _stored(world, "DocumentReference", patient)
    if TAKES_DEPOSITS[status]:
        assert response.status_code == 201, response.text
        assert len(stored) == 1
    else:
        _refused_with_outcome(response)
        assert stored == set()


@pytest.mark.parametrize("status", list(TAKES_DEPOSITS))
def test_hl7v2_lands_only_in_a_record_that_takes_deposits(world: World, status: str) -> None:
    """An ORU^R01 for the person over HTTP: AA where deposits are taken, else AE/AR with an ERR
    segment and nothing stored."""
    main(["facilities", "add", "--server", world.server.root_url, "--token", world.server.token, *FACILITY])
    tag = uuid.uuid4().hex[:8]
    patient = _patient_of_status(world, status, f"1800175{int(tag, 16) % 10**9}")
    response = world.http.post(world.server.root_url + "/ingest/hl7v2", content=personalised("oru_r01.hl7", tag),
                               headers={**world.headers("H"), **ER7})
    ack = er7.parse(response.content)
    stored = _stored(world, "Observation", patient)
    if TAKES_DEPOSITS[status]:
        assert ack.text("MSA-1") == "AA", response.text
        assert stored
    else:
        assert ack.text("MSA-1") in ("AE", "AR"), response.text
        assert ack.first("ERR") is not None, response.text
        assert stored == set()


@pytest.mark.parametrize("caller", ["A", "E_btg", "H"])
def test_nobody_reads_an_opposed_record(world: World, caller: str) -> None:
    response = world.get(caller, "/DocumentReference", params={"patient": world.patients["O"]})
    assert is_refusal(response), response.text


# -- closed -------------------------------------------------------------------------------------

@pytest.mark.parametrize("caller", ["A", "T", "E_btg", "H"])
def test_a_closed_record_opens_to_no_professional(world: World, caller: str) -> None:
    """Dr A (authorised), Dr T (médecin traitant), Dr E breaking the glass, the hospital that deposited."""
    assert is_refusal(world.get(caller, "/DocumentReference", params={"patient": world.patients["K"]}))
    assert is_refusal(world.get(caller, f"/DocumentReference/{world.documents['k_doc'].id}"))
    assert is_refusal(world.get(caller, f"/Binary/{world.documents['k_doc'].binary_id}"))


@pytest.mark.parametrize("caller", ["A", "T", "E_btg", "H"])
def test_a_closed_record_is_not_reached_by_searches_naming_no_patient(world: World, caller: str) -> None:
    """`_id`, system search and history name no record: they look in the records the caller may
    open, which a closed record is not."""
    document = world.documents["k_doc"]
    for path, params in (("/DocumentReference", {"_id": document.id}),
                         ("/", {"_type": "DocumentReference", "_id": document.id}),
                         ("/DocumentReference/_history", {"_since": world.started, "_count": "200"}),
                         ("/Binary/_history", {"_since": world.started, "_count": "200"})):
        response = world.get(caller, path, params=params)
        if is_refusal(response):
            continue
        assert response.status_code == 200, (path, response.text)
        found = bundle_ids(response.json()) | bundle_ids(response.json(), "Binary")
        assert not found & {document.id, document.binary_id}, (path, caller)


@pytest.mark.parametrize("depositor", ["H", "A"])
def test_a_closed_record_takes_no_deposit(world: World, depositor: str) -> None:
    _refused_with_outcome(world.provide(depositor, world.patients["K"]))
    assert _stored(world, "DocumentReference", world.patients["K"]) == {world.documents["k_doc"].id}


def test_the_patient_still_reads_a_closed_record(world: World) -> None:
    response = world.get("K", "/DocumentReference", params={"patient": world.patients["K"]})
    assert response.status_code == 200, response.text
    assert bundle_ids(response.json()) == {world.documents["k_doc"].id}
    assert world.get("K", f"/Binary/{world.documents['k_doc'].binary_id}", headers={"Accept": "*/*"}).status_code == 200


# -- pending ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("caller", "sees"), [("A", {"g_a"}), ("H", {"g_h"}), ("T", set()), ("platform", {"g_a", "g_h"})])
def test_a_pending_record_shows_each_depositor_their_own(world: World, caller: str, sees: set[str]) -> None:
    response = world.get(caller, "/DocumentReference", params={"patient": world.patients["G"]})
    assert response.status_code == 200, response.text
    assert bundle_ids(response.json()) == {world.documents[k].id for k in sees}


def test_activation_opens_the_pending_deposits_to_the_authorised(world: World) -> None:
    patient, _ = world.patient(status="pending")
    world.consent(patient, "permit", world.professionals["A"])
    hospital = world.deposit("activated", "H", patient)
    before = world.get("A", "/DocumentReference", params={"patient": patient})
    assert before.status_code == 200 and bundle_ids(before.json()) == set(), before.text
    world.set_status(patient, "active")
    after = world.get("A", "/DocumentReference", params={"patient": patient})
    assert after.status_code == 200 and bundle_ids(after.json()) == {hospital.id}, after.text


def test_the_record_status_is_read_from_the_patient_resource(world: World) -> None:
    """The status is FHIR data anyone allowed to read the Patient sees as the contract says."""
    patient = world.get("platform", f"/Patient/{world.patients['K']}").json()
    assert {"url": "https://fhir-server.example.org/StructureDefinition/record-status", "valueCode": "closed"} in patient["extension"]
    assert INS_NIA in {i["system"] for i in patient["identifier"]}


# -- the patient's own choices --------------------------------------------------------------------

def _set_status_as(world: World, caller: str, patient_id: str, status: str) -> httpx.Response:
    current = world.get(caller, f"/Patient/{patient_id}").json()
    others = [e for e in current.get("extension", []) if e.get("url") != RECORD_STATUS]
    return world.request(caller, "PUT", f"/Patient/{patient_id}",
                         json={**current, "extension": [*others, {"url": RECORD_STATUS, "valueCode": status}]})


def _own_record(world: World, name: str) -> str:
    """An active record with Dr A authorised and a letter of hospital H; its patient's token is `name`."""
    patient, ins = world.patient()
    world.patient_caller(name, ins)
    world.consent(patient, "permit", world.professionals["A"])
    world.deposit(f"{name}_doc", "H", patient)
    return patient


def test_the_patient_closes_their_record_and_still_reads_it(world: World) -> None:
    patient = _own_record(world, "closer")
    assert world.get("A", "/DocumentReference", params={"patient": patient}).status_code == 200
    response = _set_status_as(world, "closer", patient, "closed")
    assert response.status_code == 200, response.text
    assert is_refusal(world.get("A", "/DocumentReference", params={"patient": patient}))
    mine = world.get("closer", "/DocumentReference", params={"patient": patient})
    assert mine.status_code == 200 and bundle_ids(mine.json()) == {world.documents["closer_doc"].id}, mine.text


def test_the_patient_opposes_and_the_record_is_emptied(world: World) -> None:
    patient = _own_record(world, "objector")
    # An objection is made while the record is pending (issue 14: an active record is closed instead).
    world.set_status(patient, "pending")
    response = _set_status_as(world, "objector", patient, "opposed")
    assert response.status_code == 200, response.text
    assert _stored(world, "DocumentReference", patient) == set()
    assert world.get("platform", f"/Binary/{world.documents['objector_doc'].binary_id}").status_code in (404, 410)
    assert is_refusal(world.get("A", "/DocumentReference", params={"patient": patient}))
    _refused_with_outcome(world.provide("H", patient))
    # Nothing routes to the purged resources any more (issue 25's `ids` table): their ids are free
    # again, here for another record.
    other, _ = world.patient()
    document = world.documents["objector_doc"].id
    again = world.request("platform", "PUT", f"/DocumentReference/{document}", json={
        "resourceType": "DocumentReference", "id": document, "status": "current",
        "subject": {"reference": f"Patient/{other}"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "YQ=="}}]})
    assert again.status_code == 201, again.text
    assert world.get("platform", f"/DocumentReference/{document}/_history/1").status_code == 200


@pytest.mark.parametrize("caller", ["A", "H"])
def test_nobody_but_the_patient_sets_the_record_status(world: World, caller: str) -> None:
    patient = _own_record(world, f"kept-{caller}")
    response = _set_status_as(world, caller, patient, "closed")
    assert response.status_code == 403, response.text
    assert world.get("A", "/DocumentReference", params={"patient": patient}).status_code == 200


def test_the_patient_opposes_emergency_access_with_their_own_token(world: World) -> None:
    patient = _own_record(world, "no-btg")
    assert world.get("E_btg", "/DocumentReference", params={"patient": patient}).status_code == 200
    world.consent(patient, "deny", purpose=True, caller="no-btg")
    assert is_refusal(world.get("E_btg", "/DocumentReference", params={"patient": patient}))
