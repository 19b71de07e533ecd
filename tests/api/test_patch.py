"""JSON Patch failures name the operation and its path, never what the resource holds."""

from __future__ import annotations

import json

import httpx
import pytest

INS = "urn:oid:1.2.250.1.213.1.4.10"
PATCH = {"Content-Type": "application/json-patch+json"}
# What the stored Patient holds and no error message may repeat.
SECRETS = ("DURAND", "Marie", "1948-03-09", "12 rue des Lilas")


def _patient(fhir: httpx.Client, unique: str) -> dict:
    resource = {"resourceType": "Patient", "identifier": [{"system": INS, "value": f"3{unique}"}],
                "name": [{"family": "DURAND", "given": ["Marie"]}], "gender": "female", "birthDate": "1948-03-09",
                "address": [{"line": ["12 rue des Lilas"], "city": "Lyon"}]}
    response = fhir.post("/Patient", json=resource)
    assert response.status_code == 201, response.text
    return response.json()


def _patch(fhir: httpx.Client, patient: dict, ops: list) -> httpx.Response:
    return fhir.patch(f"/Patient/{patient['id']}", content=json.dumps(ops), headers=PATCH)


def test_failed_test_operation_names_the_operation_and_path_only(fhir: httpx.Client, unique: str) -> None:
    patient = _patient(fhir, unique)
    ops = [{"op": "replace", "path": "/gender", "value": "male"},
           {"op": "test", "path": "/name/0", "value": {"family": "MARTIN"}}]
    response = _patch(fhir, patient, ops)
    assert response.status_code == 422, response.text
    issue = response.json()["issue"][0]
    assert "test" in issue["diagnostics"] and "/name/0" in issue["diagnostics"] and "1" in issue["diagnostics"]
    assert issue["expression"] == ["Patient.name[0]"]
    assert not any(secret in response.text for secret in SECRETS)
    assert fhir.get(f"/Patient/{patient['id']}").json()["gender"] == "female"


FAILING = [
    [{"op": "test", "path": "", "value": {}}],
    [{"op": "replace", "path": "/name/0/nickname", "value": "x"}],
    [{"op": "add", "path": "/name/0/family/0", "value": "x"}],
    [{"op": "remove", "path": "/address/0/line/3"}],
    [{"op": "add", "path": "/birthDate/x", "value": "x"}],
    [{"op": "move", "from": "/address/0/postalCode", "path": "/gender"}],
    [{"op": "copy", "from": "/name/0/family", "path": "/gender"}],
    [{"op": "copy", "from": "/address/0/line/0", "path": "/birthDate"}],
    [{"op": "copy", "from": "/name/0", "path": "/telecom"}],
    [{"op": "bogus", "path": "/name"}],
    [{"op": "add", "path": "name", "value": 1}],
]


@pytest.mark.parametrize("ops", FAILING, ids=[json.dumps(o) for o in FAILING])
def test_no_patch_error_repeats_resource_content(fhir: httpx.Client, unique: str, ops: list) -> None:
    patient = _patient(fhir, unique)
    response = _patch(fhir, patient, ops)
    assert response.status_code in (400, 422), response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert not any(secret in response.text for secret in SECRETS), response.text
    assert fhir.get(f"/Patient/{patient['id']}").json()["meta"]["versionId"] == "1"
