"""The patient's own entries (issue 23; docs/RECORD-CONTENTS.md c) and 2°), over HTTP with real
tokens: what a patient enters names them as its source and has a Provenance naming them; they
correct and delete it; professionals read it and cannot change or delete it; the patient cannot
change or delete what others deposited, nor write into another person's record; documents they
add are PDF, JPEG or PNG of a patient document type; only the platform writes legal
representatives. Every refusal leaves nothing stored.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.world import TRE_A05, TRE_A07, World, new_finess, new_ins, open_world
from tests.mhd.documents import PDF, provide_bundle
from tests.server_process import ServerProcess

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
TRE_A03 = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
V3_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
TRE_R260 = "https://mos.esante.gouv.fr/NOS/TRE_R260-HL7RoleClass/FHIR/TRE-R260-HL7RoleClass"
TRE_R217 = "https://mos.esante.gouv.fr/NOS/TRE_R217-ProtectionJuridique/FHIR/TRE-R217-ProtectionJuridique"
SNOMED = "http://snomed.info/sct"
# A Windows program's first bytes (the MZ header), labelled as a PDF in the tests.
WINDOWS_PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(64)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
VITAL_SIGNS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}
# Where each type says who entered it (docs/RECORD-CONTENTS.md).
SOURCES = {"Observation": "performer", "AllergyIntolerance": "recorder", "Condition": "asserter",
           "MedicationStatement": "informationSource", "DocumentReference": "author"}


def weight(patient_id: str, value: float = 72.5, unit: str = "kg", code: str = "kg") -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "category": [VITAL_SIGNS],
            "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
            "subject": {"reference": f"Patient/{patient_id}"}, "effectiveDateTime": "2026-11-30",
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": code}}


def entry(resource_type: str, patient_id: str, mark: str) -> dict[str, Any]:
    """One entry of each type the patient writes, `mark` in its text so a search finds it."""
    subject = {"reference": f"Patient/{patient_id}"}
    concept = {"coding": [{"system": SNOMED, "code": "91936005"}], "text": mark}
    if resource_type == "Observation":
        return {**weight(patient_id), "note": [{"text": mark}]}
    if resource_type == "AllergyIntolerance":
        return {"resourceType": "AllergyIntolerance", "patient": subject, "code": concept}
    if resource_type == "Condition":
        return {"resourceType": "Condition", "subject": subject, "code": concept}
    if resource_type == "FamilyMemberHistory":
        return {"resourceType": "FamilyMemberHistory", "status": "completed", "patient": subject,
                "relationship": {"coding": [{"system": V3_ROLE, "code": "FTH"}]}, "note": [{"text": mark}]}
    if resource_type == "MedicationStatement":
        return {"resourceType": "MedicationStatement", "status": "active", "subject": subject,
                "medicationCodeableConcept": concept}
    if resource_type == "Immunization":
        return {"resourceType": "Immunization", "status": "completed", "patient": subject,
                "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}], "text": mark},
                "occurrenceDateTime": "2025-10-15"}
    raise AssertionError(resource_type)


ENTRY_TYPES = ("Observation", "AllergyIntolerance", "Condition", "FamilyMemberHistory", "MedicationStatement",
               "Immunization")


def document(patient_id: str, mark: str, data: bytes = PDF, content_type: str = "application/pdf",
             code: tuple[str, str] = (TRE_A05, "DOCPAT03")) -> dict[str, Any]:
    """A document the patient adds, its bytes inline."""
    return {"resourceType": "DocumentReference", "status": "current",
            "type": {"coding": [{"system": code[0], "code": code[1]}]},
            "subject": {"reference": f"Patient/{patient_id}"}, "description": mark,
            "content": [{"attachment": {"contentType": content_type, "data": base64.b64encode(data).decode(),
                                        "title": "Résultat"}}]}


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.system("H", new_finess())
    world.practitioner("A")
    world.patient_id, world.ins = world.patient(birth_date="1980-04-12")
    world.patients["other"], other_ins = world.patient(birth_date="1975-01-20")
    world.patient_caller("P", world.ins)
    world.patient_caller("O", other_ins)
    world.consent(world.patient_id, "permit", world.professionals["A"])
    world.deposit("letter", "H")
    yield world
    world.http.close()


def count(world: World, resource_type: str, patient_id: str, mark: str | None = None) -> int:
    """What the store holds, as the platform sees it: a search by patient, then by mark in the JSON."""
    response = world.get("platform", f"/{resource_type}", params={"patient": patient_id, "_count": "1000"})
    assert response.status_code == 200, response.text
    entries = [e["resource"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"]
    return sum(1 for r in entries if mark is None or mark in str(r))


def binaries(world: World) -> int:
    """Every Binary the store holds (Binary has no patient search parameter)."""
    response = world.get("platform", "/Binary", params={"_summary": "count"})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def provenances(world: World, caller: str, reference: str) -> list[dict[str, Any]]:
    response = world.get(caller, "/Provenance", params={"patient": world.patient_id, "_count": "1000"})
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])
            if any(t["reference"].startswith(reference + "/_history/") for t in e["resource"]["target"])]


def says(response: Any, text: str) -> bool:
    return text.lower() in str(response.json().get("issue")).lower()


@pytest.mark.parametrize("resource_type", ENTRY_TYPES)
def test_the_patient_enters_and_the_record_says_so(world: World, resource_type: str) -> None:
    mark = uuid.uuid4().hex
    created = world.request("P", "POST", f"/{resource_type}", json=entry(resource_type, world.patient_id, mark))
    assert created.status_code == 201, created.text
    stored = created.json()
    me = f"Patient/{world.patient_id}"
    source = SOURCES.get(resource_type)
    if source is not None:
        value = stored[source]
        assert (value[0] if isinstance(value, list) else value) == {"reference": me}
    if resource_type in ("AllergyIntolerance", "Condition"):
        assert stored["recorder"] == {"reference": me}
    if resource_type == "Immunization":
        assert stored["primarySource"] is False
    reference = f"{resource_type}/{stored['id']}"
    (provenance,) = provenances(world, "P", reference)
    assert provenance["target"][0]["reference"] == f"{reference}/_history/1"
    assert provenance["agent"][0]["who"] == {"reference": me}
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "author"
    # The authorised professional reads it and its Provenance.
    assert world.get("A", f"/{reference}").status_code == 200
    assert len(provenances(world, "A", reference)) == 1


def test_a_legal_representative_enters_on_the_minors_behalf(world: World) -> None:
    minor, _ = world.patient(birth_date="2017-09-03")
    parent = new_ins()
    link = world.representative(minor, parent, "MTH")
    world.patient_caller("R", parent, context=minor)
    created = world.request("R", "POST", "/Observation", json=weight(minor, 24.0))
    assert created.status_code == 201, created.text
    response = world.get("platform", "/Provenance", params={"patient": minor})
    (provenance,) = [e["resource"] for e in response.json()["entry"]]
    assert provenance["target"][0]["reference"] == f"Observation/{created.json()['id']}/_history/1"
    assert provenance["agent"][0]["who"] == {"reference": f"RelatedPerson/{link}"}
    assert provenance["agent"][0]["onBehalfOf"] == {"reference": f"Patient/{minor}"}


@pytest.mark.parametrize("resource_type", ENTRY_TYPES)
def test_not_into_another_persons_record(world: World, resource_type: str) -> None:
    mark = uuid.uuid4().hex
    other = world.patients["other"]
    refused = world.request("P", "POST", f"/{resource_type}", json=entry(resource_type, other, mark))
    assert refused.status_code == 403, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert count(world, resource_type, other, mark) == 0
    assert count(world, "Provenance", other) == 0


def test_a_weight_in_metres_is_refused(world: World) -> None:
    before = count(world, "Observation", world.patient_id)
    refused = world.request("P", "POST", "/Observation", json=weight(world.patient_id, 1.8, "m", "m"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert count(world, "Observation", world.patient_id) == before


def test_an_entry_naming_someone_else_as_its_source_is_refused(world: World) -> None:
    mark = uuid.uuid4().hex
    practitioner = f"Practitioner/{world.professionals['A'].practitioner_id}"
    cases = [
        {**entry("Observation", world.patient_id, mark), "performer": [{"reference": practitioner}]},
        {**entry("AllergyIntolerance", world.patient_id, mark), "asserter": {"reference": practitioner}},
        {**entry("MedicationStatement", world.patient_id, mark), "informationSource": {"reference": practitioner}},
        {**entry("Immunization", world.patient_id, mark), "primarySource": True},
        {**entry("Immunization", world.patient_id, mark), "reportOrigin": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/immunization-origin", "code": "provider"}]}},
        {**document(world.patient_id, mark), "author": [{"reference": practitioner}]},
    ]
    for resource in cases:
        refused = world.request("P", "POST", f"/{resource['resourceType']}", json=resource)
        assert refused.status_code == 422, refused.text
        assert count(world, resource["resourceType"], world.patient_id, mark) == 0


def test_the_patient_corrects_and_deletes_their_entry(world: World) -> None:
    created = world.request("P", "POST", "/Observation", json=weight(world.patient_id)).json()
    reference = f"Observation/{created['id']}"
    corrected = world.request("P", "PUT", f"/{reference}", json={**created, "valueQuantity": {
        "value": 71.0, "unit": "kg", "system": UCUM, "code": "kg"}})
    assert corrected.status_code == 200, corrected.text
    activities = sorted(p["activity"]["coding"][0]["code"] for p in provenances(world, "P", reference))
    assert activities == ["CREATE", "UPDATE"]
    assert world.request("P", "DELETE", f"/{reference}").status_code in (200, 204)
    assert world.get("P", f"/{reference}").status_code == 410


def test_professionals_cannot_change_or_delete_the_patients_entries(world: World) -> None:
    created = world.request("P", "POST", "/Condition", json=entry("Condition", world.patient_id, "asthme")).json()
    reference = f"Condition/{created['id']}"
    changed = {**created, "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]}}
    assert world.request("A", "PUT", f"/{reference}", json=changed).status_code == 403
    assert world.request("A", "DELETE", f"/{reference}").status_code == 403
    # A hospital system does not see it: written over, it is a conflict; deleted, nothing.
    assert world.request("H", "PUT", f"/{reference}", json=changed).status_code == 409
    assert world.request("H", "DELETE", f"/{reference}").status_code in (200, 204)
    assert world.get("platform", f"/{reference}").json()["meta"]["versionId"] == "1"


def test_the_patient_cannot_change_or_delete_a_professionals_document(world: World) -> None:
    letter = world.documents["letter"]
    current = world.get("P", f"/DocumentReference/{letter.id}").json()
    deleted = world.request("P", "DELETE", f"/DocumentReference/{letter.id}")
    assert deleted.status_code == 403, deleted.text
    assert says(deleted, "not delete")
    assert world.request("P", "DELETE", f"/Binary/{letter.binary_id}").status_code == 403
    assert world.request("P", "PUT", f"/DocumentReference/{letter.id}",
                         json={**current, "description": "changed"}).status_code == 403
    before = binaries(world)
    added = world.request("P", "POST", "/Binary", content=PDF, headers={
        "Content-Type": "application/pdf", "X-Security-Context": f"DocumentReference/{letter.id}"})
    assert added.status_code == 403, added.text
    assert binaries(world) == before
    after = world.get("platform", f"/DocumentReference/{letter.id}").json()
    assert after["meta"]["versionId"] == current["meta"]["versionId"]
    assert world.get("platform", f"/Binary/{letter.binary_id}").status_code == 200


def test_the_patient_masks_a_professionals_entry_without_becoming_its_source(world: World) -> None:
    """An update is left as sent (nothing filled in): masking what a professional wrote is no entry
    of the patient's, and has no Provenance naming them."""
    measured = world.request("A", "POST", "/Observation", json=weight(world.patient_id, 80.0))
    assert measured.status_code == 201, measured.text
    observation = measured.json()
    assert "performer" not in observation
    masked = {**observation, "meta": {"security": [{"system": TRE_A07, "code": "MASQUE_PS"}]}}
    response = world.request("P", "PUT", f"/Observation/{observation['id']}", json=masked)
    assert response.status_code == 200, response.text
    assert "performer" not in response.json()
    assert provenances(world, "platform", f"Observation/{observation['id']}") == []
    assert world.request("P", "DELETE", f"/Observation/{observation['id']}").status_code == 403


def test_the_patient_adds_a_document_and_deletes_it(world: World) -> None:
    mark = uuid.uuid4().hex
    created = world.request("P", "POST", "/DocumentReference", json=document(world.patient_id, mark))
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["author"] == [{"reference": f"Patient/{world.patient_id}"}]
    assert stored["category"][0]["coding"][0]["system"] == TRE_A03
    assert stored["category"][0]["coding"][0]["code"] == "90"
    assert len(provenances(world, "P", f"DocumentReference/{stored['id']}")) == 1
    assert world.get("A", f"/DocumentReference/{stored['id']}").status_code == 200
    assert world.request("A", "DELETE", f"/DocumentReference/{stored['id']}").status_code == 403
    assert world.request("P", "DELETE", f"/DocumentReference/{stored['id']}").status_code in (200, 204)
    assert count(world, "DocumentReference", world.patient_id, mark) == 0


def test_the_patient_adds_a_photo_through_iti65(world: World) -> None:
    master_id = f"1.2.250.1.999.1.1.8.{random.randrange(10**12)}"
    bundle = provide_bundle({"reference": f"Patient/{world.patient_id}"}, master_id, data=PNG, content_type="image/png",
                            format_code="urn:ihe:iti:xds:2017:mimeTypeSufficient")
    reference = bundle["entry"][1]["resource"]
    reference["type"] = {"coding": [{"system": TRE_A05, "code": "DOCPAT04"}]}
    reference.pop("author")
    reference.pop("category")
    response = world.request("P", "POST", "", json=bundle)
    assert response.status_code == 200, response.text
    locations = [e["response"]["location"] for e in response.json()["entry"]]
    doc_id = next(loc.split("/")[1] for loc in locations if loc.startswith("DocumentReference/"))
    stored = world.get("P", f"/DocumentReference/{doc_id}").json()
    assert stored["author"] == [{"reference": f"Patient/{world.patient_id}"}]


@pytest.mark.parametrize("case", ["program-as-pdf", "text", "professional-type"])
def test_documents_the_patient_may_not_add(world: World, case: str) -> None:
    mark = uuid.uuid4().hex
    resource = {"program-as-pdf": document(world.patient_id, mark, WINDOWS_PROGRAM),
                "text": document(world.patient_id, mark, b"hello", "text/plain"),
                "professional-type": document(world.patient_id, mark, code=(LOINC, "11490-0"))}[case]
    refused = world.request("P", "POST", "/DocumentReference", json=resource)
    assert refused.status_code == 422, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert count(world, "DocumentReference", world.patient_id, mark) == 0


def test_a_disguised_binary_is_refused(world: World) -> None:
    """Bytes sent on their own, naming the patient's document as their security context."""
    own = world.request("P", "POST", "/DocumentReference", json=document(world.patient_id, "x")).json()
    before = binaries(world)
    for data, content_type in ((WINDOWS_PROGRAM, "application/pdf"), (b"MZ", "application/x-msdownload")):
        refused = world.request("P", "POST", "/Binary", content=data,
                                headers={"Content-Type": content_type,
                                         "X-Security-Context": f"DocumentReference/{own['id']}"})
        assert refused.status_code == 422, refused.text
    assert binaries(world) == before


def related_person(patient_id: str, code: str, system: str, mark: str) -> dict[str, Any]:
    return {"resourceType": "RelatedPerson", "patient": {"reference": f"Patient/{patient_id}"},
            "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": new_ins()}],
            "relationship": [{"coding": [{"system": system, "code": code}]}],
            "name": [{"family": mark}], "telecom": [{"system": "phone", "value": "+33 6 12 34 56 78"}]}


def test_the_patient_names_their_trusted_person(world: World) -> None:
    mark = uuid.uuid4().hex
    created = world.request("P", "POST", "/RelatedPerson", json=related_person(world.patient_id, "NOK", TRE_R260, mark))
    assert created.status_code == 201, created.text
    assert world.request("P", "DELETE", f"/RelatedPerson/{created.json()['id']}").status_code in (200, 204)


@pytest.mark.parametrize("caller", ["P", "A"])
@pytest.mark.parametrize(("code", "system"), [("PRN", V3_ROLE), ("GUARD", TRE_R260), ("TUTEUR", TRE_R217)])
def test_only_the_platform_writes_legal_representatives(world: World, caller: str, code: str, system: str) -> None:
    mark = uuid.uuid4().hex
    refused = world.request(caller, "POST", "/RelatedPerson", json=related_person(world.patient_id, code, system, mark))
    assert refused.status_code == 403, refused.text
    assert count(world, "RelatedPerson", world.patient_id, mark) == 0
    # A trusted person turned into a guardian is refused too.
    trusted = world.request("P", "POST", "/RelatedPerson",
                            json=related_person(world.patient_id, "NOK", TRE_R260, mark)).json()
    promoted = {**trusted, "relationship": [{"coding": [{"system": system, "code": code}]}]}
    assert world.request("P", "PUT", f"/RelatedPerson/{trusted['id']}", json=promoted).status_code == 403
    assert world.get("platform", f"/RelatedPerson/{trusted['id']}").json()["meta"]["versionId"] == "1"


def test_nobody_but_the_platform_deletes_a_legal_representative(world: World) -> None:
    link = world.representative(world.patient_id, new_ins(), "GUARD")
    assert world.request("P", "DELETE", f"/RelatedPerson/{link}").status_code == 403
    assert world.request("A", "DELETE", f"/RelatedPerson/{link}").status_code == 403
    assert world.get("platform", f"/RelatedPerson/{link}").status_code == 200


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A server whose patient documents hold at most 1000 bytes."""
    server = ServerProcess(tmp_path_factory.mktemp("small") / "data",
                           env={"FHIR_PATIENT_DOCUMENT_MAX_BYTES": "1000"}).start()
    try:
        world = open_world(server)
        world.patient_id, world.ins = world.patient()
        world.patient_caller("P", world.ins)
        yield world
        world.http.close()
    finally:
        server.stop()


def test_an_oversize_document_is_refused(small: World) -> None:
    big = PDF + bytes(2000)
    mark = uuid.uuid4().hex
    inline = small.request("P", "POST", "/DocumentReference", json=document(small.patient_id, mark, big))
    assert inline.status_code == 413, inline.text
    assert inline.json()["resourceType"] == "OperationOutcome"
    bundle = provide_bundle({"reference": f"Patient/{small.patient_id}"}, f"1.2.250.1.999.1.1.9.{random.randrange(10**9)}",
                            data=big)
    reference = bundle["entry"][1]["resource"]
    reference["type"] = {"coding": [{"system": TRE_A05, "code": "DOCPAT05"}]}
    reference["description"] = mark
    reference.pop("author")
    reference.pop("category")
    provided = small.request("P", "POST", "", json=bundle)
    assert provided.status_code == 413, provided.text
    assert count(small, "DocumentReference", small.patient_id) == 0
    assert binaries(small) == 0
    assert small.request("P", "POST", "/DocumentReference", json=document(small.patient_id, mark)).status_code == 201
