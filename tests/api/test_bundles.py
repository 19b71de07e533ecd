"""batch and transaction Bundles (FHIR R4 http.html#transaction)."""

from __future__ import annotations

import httpx

from tests.api.test_crud import INS, patient


def _patient_entry(unique: str, full_url: str) -> dict:
    return {"fullUrl": full_url, "resource": patient(unique), "request": {"method": "POST", "url": "Patient"}}


def _encounter_entry(subject: str) -> dict:
    return {
        "resource": {"resourceType": "Encounter", "status": "finished",
                     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                     "subject": {"reference": subject}},
        "request": {"method": "POST", "url": "Encounter"},
    }


def test_transaction_resolves_urn_uuid_references(fhir: httpx.Client, unique: str) -> None:
    urn = "urn:uuid:6a1c7f4e-1f4b-4c59-9d3e-8f0a4a2b1c01"
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [_encounter_entry(urn), _patient_entry(unique, urn)]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created", "201 Created"]
    patient_location = body["entry"][1]["response"]["location"]
    encounter = fhir.get("/" + body["entry"][0]["response"]["location"].split("/_history")[0]).json()
    assert encounter["subject"]["reference"] == patient_location.split("/_history")[0]


def test_transaction_whose_last_entry_fails_leaves_nothing(fhir: httpx.Client, unique: str) -> None:
    urn = "urn:uuid:6a1c7f4e-1f4b-4c59-9d3e-8f0a4a2b1c02"
    broken = {"resource": {"resourceType": "Encounter", "status": "not-a-status"}, "request": {"method": "POST", "url": "Encounter"}}
    existing = fhir.post("/Patient", json=patient(unique, family="Avant")).json()
    update = {"resource": existing | {"gender": "male"}, "request": {"method": "PUT", "url": f"Patient/{existing['id']}"}}
    delete_other = fhir.post("/Patient", json=patient(unique, family="Survivant")).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        _patient_entry(unique, urn), update, {"request": {"method": "DELETE", "url": f"Patient/{delete_other['id']}"}}, broken]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    # nothing of it is visible afterwards
    found = fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()
    assert sorted(e["resource"]["name"][0]["family"] for e in found["entry"]) == ["Avant", "Survivant"]
    assert fhir.get(f"/Patient/{existing['id']}").json()["meta"]["versionId"] == "1"
    assert fhir.get(f"/Patient/{delete_other['id']}").status_code == 200


def test_transaction_failing_inside_the_store_rolls_back(fhir: httpx.Client, unique: str) -> None:
    """The last entry passes validation but fails when run (stale ifMatch): the writes before it vanish."""
    existing = fhir.post("/Patient", json=patient(unique, family="Stable")).json()
    urn = "urn:uuid:6a1c7f4e-1f4b-4c59-9d3e-8f0a4a2b1c03"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        _patient_entry(unique, urn),
        {"resource": existing | {"gender": "female"}, "request": {"method": "PUT", "url": f"Patient/{existing['id']}", "ifMatch": 'W/"7"'}},
    ]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 412
    found = fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [existing["id"]]


def test_conditional_reference_must_match_exactly_one(fhir: httpx.Client, unique: str) -> None:
    fhir.post("/Patient", json=patient(unique))
    ok = {"resourceType": "Bundle", "type": "transaction", "entry": [_encounter_entry(f"Patient?identifier={INS}|1{unique}")]}
    response = fhir.post("", json=ok)
    assert response.status_code == 200, response.text
    location = response.json()["entry"][0]["response"]["location"]
    encounter = fhir.get("/" + location.split("/_history")[0]).json()
    assert encounter["subject"]["reference"].startswith("Patient/")
    none = {"resourceType": "Bundle", "type": "transaction", "entry": [_encounter_entry(f"Patient?identifier={INS}|none{unique}")]}
    assert fhir.post("", json=none).status_code == 404
    fhir.post("/Patient", json=patient(unique))
    two = fhir.post("", json=ok)
    assert two.status_code == 412


def test_transaction_conditional_create_is_idempotent(fhir: httpx.Client, unique: str) -> None:
    entry = _patient_entry(unique, "urn:uuid:6a1c7f4e-1f4b-4c59-9d3e-8f0a4a2b1c04")
    entry["request"]["ifNoneExist"] = f"identifier={INS}|1{unique}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry, _encounter_entry(entry["fullUrl"])]}
    first = fhir.post("", json=bundle).json()
    second = fhir.post("", json=bundle).json()
    assert first["entry"][0]["response"]["status"] == "201 Created"
    assert second["entry"][0]["response"]["status"] == "200 OK"
    assert first["entry"][0]["response"]["location"] == second["entry"][0]["response"]["location"]


def test_batch_entries_succeed_or_fail_alone(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(unique), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "birthDate": "bad"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": f"Patient/{created['id']}"}},
        {"request": {"method": "GET", "url": f"Patient?identifier={INS}|1{unique}"}},
        {"request": {"method": "GET", "url": "Patient/unknown-id"}},
    ]}
    body = fhir.post("", json=bundle).json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses[0] == "201 Created" and statuses[1].startswith("400") and statuses[2] == "200 OK"
    assert body["entry"][3]["resource"]["total"] == 2
    assert statuses[4].startswith("404")
    assert body["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
