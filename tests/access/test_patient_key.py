"""Every stored current and history document carries `pat`, the patient whose record holds it
(the first Patient CompartmentDefinition parameter of its type naming a Patient), indexed on both."""

from __future__ import annotations

from typing import Any

import httpx


def test_current_and_history_documents_name_their_patient(fhir: httpx.Client, store: Any, unique: str) -> None:
    patient = fhir.post("/Patient", json={"resourceType": "Patient", "name": [{"family": unique}]}).json()["id"]
    other = fhir.post("/Patient", json={"resourceType": "Patient", "name": [{"family": unique}]}).json()["id"]
    # subject names the patient; performer (a later compartment parameter) names another: the first wins.
    observation = fhir.post("/Observation", json={
        "resourceType": "Observation", "status": "final", "code": {"text": unique},
        "subject": {"reference": f"Patient/{patient}"}, "performer": [{"reference": f"Patient/{other}"}]}).json()["id"]
    document = fhir.post("/DocumentReference", json={
        "resourceType": "DocumentReference", "status": "current",
        "author": [{"reference": f"Patient/{other}"}],
        "content": [{"attachment": {"contentType": "text/plain", "data": "YQ=="}}]}).json()["id"]
    organization = fhir.post("/Organization", json={"resourceType": "Organization", "name": unique}).json()["id"]
    assert fhir.delete(f"/Observation/{observation}").status_code == 204

    assert store["Patient"].find_one({"_id": patient})["pat"] == patient
    assert store["Observation"].find_one({"_id": observation})["pat"] == patient
    assert store["DocumentReference"].find_one({"_id": document})["pat"] == other
    assert store["Organization"].find_one({"_id": organization})["pat"] is None
    history = {(d["rid"], d["vid"]): d["pat"] for d in store["history"].find({"rid": {"$in": [
        f"Observation/{observation}", f"Organization/{organization}"]}})}
    assert history == {(f"Observation/{observation}", 1): patient, (f"Observation/{observation}", 2): patient,
                       (f"Organization/{organization}", 1): None}


def test_the_patient_key_is_indexed_on_current_and_history_collections(store: Any) -> None:
    for name in ("Patient", "Observation", "DocumentReference", "Organization", "history"):
        keys = [list(index["key"]) for index in store[name].list_indexes()]
        assert ["pat"] in keys, (name, keys)
