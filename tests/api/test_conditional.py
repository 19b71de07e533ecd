"""Conditional create, update, delete and patch (If-None-Exist, Type?criteria)."""

from __future__ import annotations

import json

import httpx

from tests.api.test_crud import INS, patient


def test_conditional_create_returns_the_existing_match(fhir: httpx.Client, unique: str) -> None:
    header = {"If-None-Exist": f"identifier={INS}|1{unique}"}
    first = fhir.post("/Patient", json=patient(unique), headers=header)
    second = fhir.post("/Patient", json=patient(unique), headers=header)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()["total"] == 1


def test_conditional_create_with_several_matches_is_412(fhir: httpx.Client, unique: str) -> None:
    fhir.post("/Patient", json=patient(unique))
    fhir.post("/Patient", json=patient(unique))
    response = fhir.post("/Patient", json=patient(unique), headers={"If-None-Exist": f"identifier={INS}|1{unique}"})
    assert response.status_code == 412


def test_conditional_create_with_unknown_parameter_is_refused(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("/Patient", json=patient(unique), headers={"If-None-Exist": "nosuchparam=1"})
    assert response.status_code == 400


def test_conditional_update_creates_then_updates(fhir: httpx.Client, unique: str) -> None:
    url = f"/Patient?identifier={INS}|1{unique}"
    created = fhir.put(url, json=patient(unique))
    assert created.status_code == 201
    updated = fhir.put(url, json=patient(unique, family="Bernard"))
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"] and updated.json()["meta"]["versionId"] == "2"


def test_conditional_update_by_id(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    updated = fhir.put(f"/Patient?_id={created['id']}", json=patient(unique, family="Petit"))
    assert updated.status_code == 200 and updated.json()["name"][0]["family"] == "Petit"


def test_conditional_delete(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    assert fhir.delete(f"/Patient?identifier={INS}|1{unique}").status_code in (200, 204)
    assert fhir.get(f"/Patient/{created['id']}").status_code == 410


def test_conditional_patch(fhir: httpx.Client, unique: str) -> None:
    fhir.post("/Patient", json=patient(unique))
    ops = json.dumps([{"op": "add", "path": "/gender", "value": "other"}])
    response = fhir.patch(f"/Patient?identifier={INS}|1{unique}", content=ops, headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 200 and response.json()["gender"] == "other"
