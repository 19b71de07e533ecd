"""JSON Patch (RFC 6902) may change a resource's content, never what identifies it: its
resourceType and its id. A refused patch leaves the resource as it was, over HTTP and inside a
transaction alike."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.api.test_crud import patient

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def patch(fhir: httpx.Client, path: str, operations: list[dict]) -> httpx.Response:
    return fhir.patch(path, content=json.dumps(operations), headers=JSON_PATCH)


def unchanged(fhir: httpx.Client, created: dict) -> None:
    current = fhir.get(f"/Patient/{created['id']}")
    assert current.status_code == 200
    assert current.json() == created
    assert len(fhir.get(f"/Patient/{created['id']}/_history").json()["entry"]) == 1


def leaks_nothing(response: httpx.Response, created: dict) -> None:
    """A refusal names the operation and its paths, never what the resource holds."""
    diagnostics = response.json()["issue"][0]["diagnostics"]
    for held in (created["birthDate"], created["name"][0]["family"], created["identifier"][0]["value"]):
        assert held not in diagnostics, diagnostics


def refused_naming(response: httpx.Response, element: str) -> None:
    assert response.status_code == 422, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "processing"
    assert element in issue["diagnostics"] and issue["expression"] == [element]


@pytest.mark.parametrize("operations", [
    [{"op": "replace", "path": "/id", "value": "someone-else"}],
    [{"op": "remove", "path": "/id"}],
    [{"op": "copy", "from": "/birthDate", "path": "/id"}],
])
def test_patch_may_not_change_the_id(fhir: httpx.Client, unique: str, operations: list[dict]) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    refused_naming(patch(fhir, f"/Patient/{created['id']}", operations), "id")
    unchanged(fhir, created)
    assert fhir.get("/Patient/someone-else").status_code == 404


@pytest.mark.parametrize("operations", [
    [{"op": "replace", "path": "/resourceType", "value": "Practitioner"}],
    [{"op": "remove", "path": "/resourceType"}],
])
def test_patch_may_not_change_the_resource_type(fhir: httpx.Client, unique: str, operations: list[dict]) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    refused_naming(patch(fhir, f"/Patient/{created['id']}", operations), "resourceType")
    unchanged(fhir, created)
    assert fhir.get(f"/Practitioner/{created['id']}").status_code == 404


def test_patch_that_sets_the_same_id_is_applied(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    operations = [{"op": "replace", "path": "/id", "value": created["id"]}, {"op": "add", "path": "/gender", "value": "other"}]
    response = patch(fhir, f"/Patient/{created['id']}", operations)
    assert response.status_code == 200, response.text
    assert (response.json()["gender"], response.json()["meta"]["versionId"]) == ("other", "2")


def test_patch_entry_of_a_transaction_may_not_change_the_id(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    operations = [{"op": "replace", "path": "/id", "value": "someone-else"}]
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
              "data": base64.b64encode(json.dumps(operations).encode()).decode()}
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{created['id']}"}}]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 422, response.text
    assert "may not change id" in response.json()["issue"][0]["diagnostics"]
    unchanged(fhir, created)


def test_patch_that_is_not_an_array_of_operations_is_refused(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.patch(f"/Patient/{created['id']}", content=b'{"op": "remove", "path": "/birthDate"}', headers=JSON_PATCH)
    assert response.status_code == 400, response.text
    assert response.json()["issue"][0]["code"] == "structure"
    assert "array of operations" in response.json()["issue"][0]["diagnostics"]
    unchanged(fhir, created)


def test_failed_patch_test_operation_is_a_422(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    operations = [{"op": "test", "path": "/birthDate", "value": "1999-01-01"}, {"op": "remove", "path": "/birthDate"}]
    response = patch(fhir, f"/Patient/{created['id']}", operations)
    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["code"] == "processing"
    assert response.json()["issue"][0]["diagnostics"] == (
        "JSON Patch operation at index 0 (test /birthDate): the resource does not hold the tested value")
    leaks_nothing(response, created)
    unchanged(fhir, created)


@pytest.mark.parametrize(("operations", "said"), [
    ([{"op": "remove", "path": "/nothing/here"}], "(remove /nothing/here) cannot be applied"),
    ([{"op": "frobnicate", "path": "/birthDate"}], "(unknown op /birthDate) is not a valid RFC 6902 operation"),
    ([{"op": "replace", "path": "/name/7/family", "value": "X"}], "(replace /name/7/family) cannot be applied"),
])
def test_patch_that_cannot_be_applied_is_a_400(fhir: httpx.Client, unique: str, operations: list[dict], said: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = patch(fhir, f"/Patient/{created['id']}", operations)
    assert response.status_code == 400, response.text
    assert response.json()["issue"][0]["code"] == "invalid"
    assert said in response.json()["issue"][0]["diagnostics"]
    leaks_nothing(response, created)
    unchanged(fhir, created)


def test_patch_that_replaces_the_whole_resource_with_a_non_object_is_refused(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = patch(fhir, f"/Patient/{created['id']}", [{"op": "replace", "path": "", "value": [1, 2]}])
    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["code"] == "processing"
    assert "does not leave a resource" in response.json()["issue"][0]["diagnostics"]
    unchanged(fhir, created)
