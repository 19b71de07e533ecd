"""Identifier searches go through the lookup table: it must follow updates, deletes and rollbacks."""

from __future__ import annotations

import httpx

from tests.api.test_crud import INS, patient


def _ids(fhir: httpx.Client, value: str) -> list[str]:
    bundle = fhir.get("/Patient", params={"identifier": f"{INS}|{value}"}).json()
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def test_lookup_follows_updates_and_deletes(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    pid = created["id"]
    assert _ids(fhir, f"1{unique}") == [pid]
    changed = created | {"identifier": [{"system": INS, "value": f"2{unique}"}]}
    fhir.put(f"/Patient/{pid}", json=changed)
    assert _ids(fhir, f"1{unique}") == []
    assert _ids(fhir, f"2{unique}") == [pid]
    assert fhir.get("/Patient", params={"identifier": f"2{unique}"}).json()["total"] == 1  # code only, any system
    fhir.delete(f"/Patient/{pid}")
    assert _ids(fhir, f"2{unique}") == []
    fhir.put(f"/Patient/{pid}", json=changed)
    assert _ids(fhir, f"2{unique}") == [pid]


def test_lookup_is_rolled_back_with_a_failed_transaction(fhir: httpx.Client, unique: str) -> None:
    other = fhir.post("/Patient", json=patient("other" + unique)).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(unique), "request": {"method": "POST", "url": "Patient"}},
        # fails inside the store transaction, after the POST above was written
        {"resource": other, "request": {"method": "PUT", "url": f"Patient/{other['id']}", "ifMatch": 'W/"9"'}},
    ]}
    assert fhir.post("", json=bundle).status_code == 412
    assert _ids(fhir, f"1{unique}") == []


def test_other_modifiers_still_use_the_index_values(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    found = fhir.get("/Patient", params={"identifier:not": f"{INS}|1{unique}", "_id": created["id"]}).json()
    assert found["total"] == 0
    found = fhir.get("/Patient", params={"identifier:missing": "false", "_id": created["id"]}).json()
    assert found["total"] == 1
