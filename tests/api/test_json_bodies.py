"""A JSON body of the wrong shape is a 400 OperationOutcome on every route that takes one, and the
client's keep-alive connection goes on working (issue 10, item 2)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server_process import ServerProcess

# JSON that parses but is not what any FHIR route takes.
NOT_OBJECTS = [b"null", b"[]", b'"x"', b"1", b"true"]
NOT_ARRAYS = [b"null", b"{}", b'"x"', b"1"]
FHIR_JSON = {"Content-Type": "application/fhir+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    """One keep-alive connection: a server that drops it after an error fails the next request."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with server.client(server.base_url, headers={"Accept": "application/fhir+json"}, limits=limits,
                      timeout=30.0) as client:
        yield client


@pytest.fixture
def target(client: httpx.Client, unique: str) -> str:
    resource = {"resourceType": "Patient", "id": f"body-{unique}", "gender": "female"}
    assert client.put(f"/Patient/body-{unique}", json=resource, headers=FHIR_JSON).status_code == 201
    return f"body-{unique}"


def refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"
    return outcome


def still_usable(client: httpx.Client, target: str) -> None:
    """The same connection answers the next request, and the resource was not touched."""
    current = client.get(f"/Patient/{target}")
    assert current.status_code == 200
    assert current.json()["meta"]["versionId"] == "1" and current.json()["gender"] == "female"


RESOURCE_ROUTES = [
    ("PUT", "/Patient/{id}"),
    ("PUT", "/Binary/{id}"),
    ("POST", "/Patient"),
    ("PUT", "/Patient?_id={id}"),
    ("POST", "/Patient/$validate"),
    ("POST", "/Patient/{id}/$validate"),
    ("POST", ""),
]


@pytest.mark.parametrize(("method", "path"), RESOURCE_ROUTES)
@pytest.mark.parametrize("body", NOT_OBJECTS)
def test_a_body_that_is_not_an_object_is_400(client: httpx.Client, target: str, method: str, path: str,
                                              body: bytes) -> None:
    issue = refused(client.request(method, path.format(id=target), content=body, headers=FHIR_JSON))["issue"][0]
    assert issue["code"] == "structure" and "JSON object" in issue["diagnostics"]
    still_usable(client, target)


@pytest.mark.parametrize("path", ["/Patient/{id}", "/Patient?_id={id}"])
@pytest.mark.parametrize("body", NOT_ARRAYS)
def test_a_json_patch_that_is_not_an_array_is_400(client: httpx.Client, target: str, path: str, body: bytes) -> None:
    issue = refused(client.patch(path.format(id=target), content=body, headers=JSON_PATCH))["issue"][0]
    assert issue["code"] == "structure" and "array" in issue["diagnostics"]
    still_usable(client, target)


def test_validate_parameters_of_the_wrong_shape_are_400(client: httpx.Client, target: str) -> None:
    for parameters in ([1], "resource", [{"name": "resource", "resource": {"resourceType": "Patient"}},
                                         {"name": "profile", "valueUri": {"not": "a uri"}}]):
        body = {"resourceType": "Parameters", "parameter": parameters}
        refused(client.post("/Patient/$validate", json=body, headers=FHIR_JSON))
        still_usable(client, target)


def _batch_status(client: httpx.Client, entry: dict[str, Any]) -> str:
    """The status a batch of this one entry gets: the Bundle's own when it cannot be read, else the entry's."""
    response = client.post("", json={"resourceType": "Bundle", "type": "batch", "entry": [entry]}, headers=FHIR_JSON)
    if response.status_code != 200:
        refused(response)
        return str(response.status_code)
    answer = response.json()["entry"][0]["response"]
    assert answer["outcome"]["resourceType"] == "OperationOutcome"
    return str(answer["status"])


def test_bundle_entries_of_the_wrong_shape_are_400(client: httpx.Client, target: str) -> None:
    patch = base64.b64encode(b'[{"op": "replace", "path": "/gender", "value": "male"}]').decode()
    url = f"Patient/{target}"
    entries = [
        {"resource": "x", "request": {"method": "PATCH", "url": url}},
        {"resource": [], "request": {"method": "PUT", "url": url}},
        {"resource": {"resourceType": "Binary", "contentType": 1, "data": patch}, "request": {"method": "PATCH", "url": url}},
        {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": 1},
         "request": {"method": "PATCH", "url": url}},
        {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch},
         "request": {"method": "PATCH", "url": url, "ifMatch": 1}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient", "ifNoneExist": ["x"]}},
        {"fullUrl": 7, "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
    ]
    for entry in entries:
        assert _batch_status(client, entry).startswith("400"), entry
        still_usable(client, target)
