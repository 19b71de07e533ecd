"""Routing by patient (issue 25): by-id interactions find a resource through the `ids` table, a
resource moved to another patient takes its history and identifier lookups with it, searches that
name a patient say so to the store, and `fhir-server shard-plan` prints the plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

from tests.api.test_store_lifecycle import store_url
from tests.server_process import ServerProcess


def _patient(fhir: httpx.Client, family: str) -> str:
    response = fhir.post("/Patient", json={"resourceType": "Patient", "name": [{"family": family}]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _observation(subject: str, unique: str, value: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": unique},
            "identifier": [{"system": "urn:test:routing", "value": unique}],
            "subject": {"reference": f"Patient/{subject}"}, "valueInteger": value}


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "include"}


def test_a_resource_moved_to_another_patient_keeps_its_history_in_the_new_record(
        fhir: httpx.Client, store: Any, unique: str) -> None:
    first, second = _patient(fhir, unique), _patient(fhir, unique)
    created = fhir.post("/Observation", json=_observation(first, unique, 1))
    assert created.status_code == 201, created.text
    oid = created.json()["id"]
    moved = fhir.put(f"/Observation/{oid}", json={**_observation(second, unique, 2), "id": oid})
    assert moved.status_code == 200, moved.text

    # Every interaction by id still finds it, all its versions included.
    assert fhir.get(f"/Observation/{oid}").json()["subject"]["reference"] == f"Patient/{second}"
    assert fhir.get(f"/Observation/{oid}/_history/1").json()["valueInteger"] == 1
    history = fhir.get(f"/Observation/{oid}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    # In the new record, its past included; nothing left in the old one.
    assert _ids(fhir.get(f"/Patient/{second}/Observation").json()) == {oid}
    assert _ids(fhir.get("/Observation", params={"patient": second}).json()) == {oid}
    assert _ids(fhir.get("/Observation", params={"subject": f"Patient/{first}"}).json()) == set()
    assert {d["vid"]: d["pat"] for d in store["history"].find({"rid": f"Observation/{oid}"})} == {1: second, 2: second}
    assert store["ids"].find_one({"_id": f"Observation/{oid}"})["pat"] == second
    # Its identifier finds it in its new record (the lookup entry names the new patient).
    found = fhir.get("/Observation", params={"identifier": f"urn:test:routing|{unique}"}).json()
    assert _ids(found) == {oid}

    # A deletion keeps its entry: the resource answers 410, and can be written again.
    assert fhir.delete(f"/Observation/{oid}").status_code == 204
    assert fhir.get(f"/Observation/{oid}").status_code == 410
    assert store["ids"].find_one({"_id": f"Observation/{oid}"}) is not None
    again = fhir.put(f"/Observation/{oid}", json={**_observation(first, unique, 3), "id": oid})
    assert again.status_code == 201, again.text
    assert fhir.get(f"/Observation/{oid}/_history/4").json()["valueInteger"] == 3
    assert {d["pat"] for d in store["history"].find({"rid": f"Observation/{oid}"})} == {first}


def test_unknown_ids_answer_404_on_every_interaction_by_id(fhir: httpx.Client, unique: str) -> None:
    assert fhir.get(f"/Observation/{unique}").status_code == 404
    assert fhir.get(f"/Observation/{unique}/_history/1").status_code == 404
    assert fhir.get(f"/Organization/{unique}").status_code == 404
    assert fhir.delete(f"/Observation/{unique}").status_code in (200, 204)


def test_searches_naming_a_patient_find_exactly_what_they_found_before(fhir: httpx.Client, unique: str) -> None:
    patient, other = _patient(fhir, unique), _patient(fhir, unique)
    mine = fhir.post("/Observation", json=_observation(patient, unique, 1)).json()["id"]
    # Named by a later compartment parameter only: in the other's record, and still found by `performer`.
    theirs = fhir.post("/Observation", json={**_observation(other, unique, 2),
                                             "performer": [{"reference": f"Patient/{patient}"}]}).json()["id"]
    assert _ids(fhir.get("/Observation", params={"subject": f"Patient/{patient}", "code:text": unique}).json()) == {mine}
    assert _ids(fhir.get("/Observation", params={"subject:Patient": patient}).json()) == {mine}
    assert _ids(fhir.get("/Observation", params={"patient": f"{patient},{other}"}).json()) == {mine, theirs}
    assert _ids(fhir.get("/Observation", params={"performer": f"Patient/{patient}"}).json()) == {theirs}
    assert _ids(fhir.get(f"/Patient/{patient}/Observation").json()) == {mine, theirs}
    included = fhir.get("/Observation", params={"_id": f"{mine},{theirs}", "_include": "Observation:subject"}).json()
    assert {e["resource"]["id"] for e in included["entry"] if e["search"]["mode"] == "include"} == {patient, other}
    assert _ids(fhir.get("/Patient", params={"_id": patient}).json()) == {patient}
    identified = fhir.post("/Patient", json={"resourceType": "Patient", "identifier": [
        {"system": "urn:test:routing:patient", "value": unique}]}).json()["id"]
    theirs_too = fhir.post("/Observation", json={**_observation(identified, unique, 3),
                                                 "performer": [{"reference": f"Patient/{patient}"}]}).json()["id"]
    chained = fhir.get("/Observation", params={"patient.identifier": f"urn:test:routing:patient|{unique}"})
    assert _ids(chained.json()) == {theirs_too}
    assert _ids(fhir.get("/Observation", params={"performer:Patient.identifier":
                                                 f"urn:test:routing:patient|{unique}"}).json()) == set()
    # Two patients named in one single-valued element at once: nothing can match.
    both = fhir.get("/Observation", params=[("subject", f"Patient/{patient}"), ("subject", f"Patient/{other}")])
    assert both.status_code == 200 and _ids(both.json()) == set()


def test_shard_plan_prints_the_plan(tmp_path: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "fhir_server.cli", "shard-plan", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=True)
    plan = {entry["collection"]: entry["key"] for entry in json.loads(done.stdout)}
    assert all(set(entry) == {"collection", "key"} for entry in json.loads(done.stdout))
    assert plan["Observation"] == {"pat": "hashed", "_id": 1}
    assert plan["Patient"] == {"pat": "hashed", "_id": 1}
    assert plan["Group_"] == {"pat": "hashed", "_id": 1}
    assert plan["history"] == {"pat": "hashed", "_id": 1}
    assert plan["outbox"] == {"pat": "hashed", "_id": 1}
    assert plan["ids"] == {"_id": "hashed"}
    assert plan["lookup"] == {"k": "hashed"}
    assert "Practitioner" not in plan and "Organization" not in plan


def test_a_data_dir_written_before_the_routing_table_is_routed_after_a_restart(tmp_path: Path, unique: str) -> None:
    json_body = {"Content-Type": "application/fhir+json"}
    server = ServerProcess(tmp_path / "data").start()
    try:
        patient = server.post(f"{server.base_url}/Patient", headers=json_body,
                              json={"resourceType": "Patient", "name": [{"family": unique}]}).json()["id"]
        observation = server.post(f"{server.base_url}/Observation", headers=json_body,
                                  json=_observation(patient, unique, 1)).json()["id"]
        # What a store written by the server before the `ids` table looks like.
        client: MongoClient[dict[str, Any]] = MongoClient(store_url(server.data_dir), serverSelectionTimeoutMS=5000)
        try:
            database = client[os.environ.get("FHIR_DATABASE", "fhir")]
            database["ids"].delete_many({})
            database["lookup"].update_many({}, {"$unset": {"p": ""}})
            database["job_marks"].delete_many({"_id": "ids-backfilled"})
        finally:
            client.close()
    finally:
        server.stop()
    again = ServerProcess(tmp_path / "data").start()
    try:
        assert again.get(f"{again.base_url}/Observation/{observation}").status_code == 200
        assert again.get(f"{again.base_url}/Patient/{patient}").status_code == 200
        assert again.get(f"{again.base_url}/Observation/{observation}/_history/1").status_code == 200
        found = again.get(f"{again.base_url}/Observation", params={"identifier": f"urn:test:routing|{unique}"})
        assert _ids(found.json()) == {observation}
        # Its id stays taken: a create with it is an update of the stored resource.
        updated = again.request("PUT", f"{again.base_url}/Observation/{observation}", headers=json_body,
                                json={**_observation(patient, unique, 2), "id": observation})
        assert updated.status_code == 200, updated.text
    finally:
        again.stop()


def test_what_follows_a_document_moves_with_it(fhir: httpx.Client, store: Any, unique: str) -> None:
    first, second = _patient(fhir, unique), _patient(fhir, unique)
    document = {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": f"Patient/{first}"},
                "content": [{"attachment": {"contentType": "text/plain", "url": f"urn:test:{unique}"}}]}
    document_id = fhir.post("/DocumentReference", json=document).json()["id"]
    binary = fhir.post("/Binary", json={"resourceType": "Binary", "contentType": "text/plain", "data": "YQ==",
                                        "securityContext": {"reference": f"DocumentReference/{document_id}"}})
    listed = fhir.post("/List", json={"resourceType": "List", "status": "current", "mode": "working",
                                      "subject": {"reference": f"Patient/{first}"},
                                      "entry": [{"item": {"reference": f"DocumentReference/{document_id}"}}]})
    assert binary.status_code == 201 and listed.status_code == 201, (binary.text, listed.text)
    binary_id, list_id = binary.json()["id"], listed.json()["id"]
    assert store["List"].find_one({"_id": list_id})["pat"] == first

    moved = fhir.put(f"/DocumentReference/{document_id}", json={
        **document, "id": document_id, "subject": {"reference": f"Patient/{second}"}})
    assert moved.status_code == 200, moved.text
    for rtype, rid in (("Binary", binary_id), ("List", list_id)):
        assert fhir.get(f"/{rtype}/{rid}").status_code == 200
        assert fhir.get(f"/{rtype}/{rid}/_history/1").status_code == 200
        assert store[rtype].find_one({"_id": rid})["pat"] == second
        assert {d["pat"] for d in store["history"].find({"rid": f"{rtype}/{rid}"})} == {second}
    assert store["ids"].find_one({"_id": f"List/{list_id}"})["pat"] == second
