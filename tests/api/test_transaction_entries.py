"""What each kind of entry of a transaction or batch Bundle does to the record (FHIR R4
http.html#transaction): the effect is checked by reading the record afterwards, not only the
status the response Bundle claims."""

from __future__ import annotations

import httpx

from tests.api.test_crud import INS, patient


def transaction(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def batch(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}


def delete(url: str) -> dict:
    return {"request": {"method": "DELETE", "url": url}}


def statuses(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["response"]["status"] for e in response.json()["entry"]]


def test_delete_entry_deletes(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    kept = fhir.post("/Patient", json=patient(unique, family="Gardé")).json()
    assert statuses(fhir.post("", json=transaction(delete(f"Patient/{created['id']}")))) == ["204 No Content"]
    assert fhir.get(f"/Patient/{created['id']}").status_code == 410
    history = fhir.get(f"/Patient/{created['id']}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert fhir.get(f"/Patient/{kept['id']}").status_code == 200


def test_conditional_delete_entry_deletes_the_one_match(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(delete(f"Patient?identifier={INS}|1{unique}")))
    assert statuses(response) == ["204 No Content"]
    assert fhir.get(f"/Patient/{created['id']}").status_code == 410


def test_conditional_delete_entry_matching_two_is_refused_and_deletes_nothing(fhir: httpx.Client, unique: str) -> None:
    first = fhir.post("/Patient", json=patient(unique)).json()
    second = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(delete(f"Patient?identifier={INS}|1{unique}")))
    assert response.status_code == 412, response.text
    assert [fhir.get(f"/Patient/{p['id']}").status_code for p in (first, second)] == [200, 200]


def test_delete_entry_in_a_batch_deletes(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    assert statuses(fhir.post("", json=batch(delete(f"Patient/{created['id']}")))) == ["204 No Content"]
    assert fhir.get(f"/Patient/{created['id']}").status_code == 410


def test_delete_of_what_does_not_exist_is_not_an_error(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("", json=transaction(delete(f"Patient/nothing-{unique}"), delete(f"Patient?identifier={INS}|none{unique}")))
    assert statuses(response) == ["204 No Content", "204 No Content"]
    assert fhir.get(f"/Patient/nothing-{unique}").status_code == 404


def test_delete_runs_before_the_create_of_the_same_bundle(fhir: httpx.Client, unique: str) -> None:
    """The spec's order (DELETE, POST, PUT/PATCH, GET) whatever the order of the entries: the
    conditional delete removes the old patient, not the one the same bundle creates."""
    old = fhir.post("/Patient", json=patient(unique, family="Ancien")).json()
    response = fhir.post("", json=transaction(
        {"resource": patient(unique, family="Nouveau"), "request": {"method": "POST", "url": "Patient"}},
        delete(f"Patient?identifier={INS}|1{unique}"),
    ))
    assert statuses(response) == ["201 Created", "204 No Content"]
    assert fhir.get(f"/Patient/{old['id']}").status_code == 410
    found = fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()
    assert [e["resource"]["name"][0]["family"] for e in found["entry"]] == ["Nouveau"]


def test_delete_entry_without_id_or_criteria_is_refused(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(delete(f"Patient/{created['id']}"), delete("Patient")))
    assert response.status_code == 400, response.text
    assert "DELETE needs an id or criteria" in response.json()["issue"][0]["diagnostics"]
    assert fhir.get(f"/Patient/{created['id']}").status_code == 200
