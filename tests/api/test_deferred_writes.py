"""A write's transaction defers its new resources' inserts (with their `ids` entries and its claims)
to the commit, one insert per collection (issue 18, fhir_server/storage/pending.py): what it wrote
is still what it reads back before the commit, and an id found taken at the commit is the conflict
it always was, with nothing of the transaction stored."""

from __future__ import annotations

from typing import Any

import httpx

LOINC = "http://loinc.org"


def _observation(resource_id: str, value: float) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": resource_id, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]}, "valueQuantity": {"value": value}}


def _put(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}}


def test_a_transaction_updates_what_it_created_before_its_commit(fhir: httpx.Client, unique: str) -> None:
    """The second entry reads the first one's version, still deferred when it runs: the store must
    hold it by then (Repository.settle), or the update would find nothing to replace."""
    oid = f"deferred-{unique}"
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [_put(_observation(oid, 60)), _put(_observation(oid, 61))]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    read = fhir.get(f"/Observation/{oid}")
    assert read.status_code == 200
    assert read.json()["meta"]["versionId"] == "2" and read.json()["valueQuantity"]["value"] == 61
    history = fhir.get(f"/Observation/{oid}/_history").json()
    assert sorted(e["resource"]["meta"]["versionId"] for e in history["entry"]) == ["1", "2"]


def test_an_id_taken_when_the_transaction_commits_is_a_conflict(fhir: httpx.Client, store: Any, unique: str) -> None:
    """An `ids` entry of another shard's concurrent create (put in the store by hand: on one store
    writers take turns) makes the deferred insert fail at the commit: 409, and the transaction's
    other entry is not stored either."""
    oid = f"taken-{unique}"
    store["ids"].insert_one({"_id": f"Observation/{oid}", "pat": None})
    try:
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            _put(_observation(f"beside-{unique}", 70)), _put(_observation(oid, 71))]}
        response = fhir.post("", json=bundle)
        assert response.status_code == 409, response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "conflict"
        assert fhir.get(f"/Observation/beside-{unique}").status_code == 404
        single = fhir.put(f"/Observation/{oid}", json=_observation(oid, 72))
        assert single.status_code == 409, single.text
        assert single.json()["resourceType"] == "OperationOutcome"
    finally:
        store["ids"].delete_one({"_id": f"Observation/{oid}"})
    assert fhir.put(f"/Observation/{oid}", json=_observation(oid, 73)).status_code == 201
