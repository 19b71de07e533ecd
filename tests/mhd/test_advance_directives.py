"""Advance directives over HTTP: their own listing on the patient, and no way to mask them
(DECISIONS.md: the patient replaces or deletes them; they stay readable to professionals)."""

from __future__ import annotations

import json

import httpx

from tests.mhd.documents import provide_bundle

PATCH = {"Content-Type": "application/json-patch+json"}
VISIBILITY = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
ADVANCE_DIRECTIVES = {"coding": [{"system": "http://loinc.org", "code": "42348-3", "display": "Directives anticipées"}]}
# The DMP's own type code for them (JDV_J07-XdsTypeCode-CISIS).
EXPPAT_3 = {"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire",
                        "code": "EXPPAT_3", "display": "Directives anticipées"}]}


def deposit(fhir: httpx.Client, patient_id: str, master_id: str, *, directive: bool = True,
            labels: list[str] = (), replaces: str | None = None, type_: dict = ADVANCE_DIRECTIVES) -> httpx.Response:
    """An ITI-65 Provide Document Bundle of one PDF; an advance directive unless told otherwise."""
    relates_to = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}] if replaces else None
    bundle = provide_bundle({"reference": f"Patient/{patient_id}"}, master_id, relates_to=relates_to)
    doc = bundle["entry"][1]["resource"]
    if directive:
        doc["type"] = type_
    doc["securityLabel"] += [{"coding": [{"system": VISIBILITY, "code": code}]} for code in labels]
    return fhir.post("", json=bundle)


def document(fhir: httpx.Client, master_id: str) -> dict:
    [entry] = fhir.get("/DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master_id}"}).json()["entry"]
    return entry["resource"]


def listed(fhir: httpx.Client, patient_id: str) -> list[str]:
    response = fhir.get(f"/Patient/{patient_id}/$advance-directives")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    return sorted(entry["resource"]["id"] for entry in bundle.get("entry", []))


def test_the_operation_lists_the_patients_current_advance_directives_only(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    patient_id = known_patient["id"]
    assert deposit(fhir, patient_id, master_id).status_code == 200
    assert deposit(fhir, patient_id, master_id + ".1", directive=False).status_code == 200
    directive = document(fhir, master_id)
    assert listed(fhir, patient_id) == [directive["id"]]
    # The documented search answers the same.
    search = fhir.get("/DocumentReference", params={"patient": patient_id, "type": "http://loinc.org|42348-3", "status": "current"}).json()
    assert [e["resource"]["id"] for e in search["entry"]] == [directive["id"]]
    # A new version replaces the old one: only the new one is listed.
    assert deposit(fhir, patient_id, master_id + ".2", replaces=directive["id"]).status_code == 200
    assert listed(fhir, patient_id) == [document(fhir, master_id + ".2")["id"]]
    assert document(fhir, master_id)["status"] == "superseded"


def test_another_patients_directives_are_not_listed(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    assert deposit(fhir, known_patient["id"], master_id).status_code == 200
    other = fhir.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "AUTRE"}]}).json()
    assert listed(fhir, other["id"]) == []


def test_an_unknown_patient_is_404(fhir: httpx.Client) -> None:
    response = fhir.get("/Patient/no-such-patient/$advance-directives")
    assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome"


def test_masking_an_advance_directive_is_refused_saying_why(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    assert deposit(fhir, known_patient["id"], master_id).status_code == 200
    url = f"/DocumentReference?identifier=urn:ietf:rfc:3986|urn:oid:{master_id}"
    for code in ("MASQUE_PS", "INVISIBLE_PATIENT"):
        mask = [{"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"system": VISIBILITY, "code": code}]}}]
        response = fhir.patch(url, content=json.dumps(mask), headers=PATCH)
        assert response.status_code == 422, response.text
        assert "cannot be masked" in response.text
    current = document(fhir, master_id)
    assert current["meta"]["versionId"] == "1"
    assert not any(c.get("system") == VISIBILITY for label in current["securityLabel"] for c in label["coding"])
    assert listed(fhir, known_patient["id"]) == [current["id"]]


def test_a_directive_deposited_masked_is_refused_and_not_stored(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    response = deposit(fhir, known_patient["id"], master_id, labels=["MASQUE_PS"])
    assert response.status_code == 422 and "cannot be masked" in response.text
    assert fhir.get("/DocumentReference", params={"patient": known_patient["id"]}).json().get("entry", []) == []


def test_other_documents_can_still_be_masked(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    assert deposit(fhir, known_patient["id"], master_id, directive=False).status_code == 200
    url = f"/DocumentReference?identifier=urn:ietf:rfc:3986|urn:oid:{master_id}"
    mask = [{"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"system": VISIBILITY, "code": "MASQUE_PS"}]}}]
    assert fhir.patch(url, content=json.dumps(mask), headers=PATCH).status_code == 200


def test_the_dmp_type_code_for_advance_directives_counts_too(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    assert deposit(fhir, known_patient["id"], master_id, type_=EXPPAT_3).status_code == 200
    directive = document(fhir, master_id)
    assert listed(fhir, known_patient["id"]) == [directive["id"]]
    mask = [{"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"system": VISIBILITY, "code": "MASQUE_PS"}]}}]
    response = fhir.patch(f"/DocumentReference/{directive['id']}", content=json.dumps(mask), headers=PATCH)
    assert response.status_code == 422 and "cannot be masked" in response.text
