"""Every client error is an OperationOutcome with the right status; none is a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_crud import patient


def outcome(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] in ("error", "fatal") and issue["code"] and issue["diagnostics"]
    return body


def test_malformed_json(fhir: httpx.Client) -> None:
    body = outcome(fhir.post("/Patient", content=b'{"resourceType": "Patient",'), 400)
    assert body["issue"][0]["code"] == "structure"
    assert "not valid JSON" in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize("content", [b"", b"  \r\n\t "])
def test_empty_body(fhir: httpx.Client, content: bytes) -> None:
    body = outcome(fhir.post("/Patient", content=content), 400)
    assert body["issue"][0]["code"] == "structure"
    assert "empty" in body["issue"][0]["diagnostics"]


def test_invalid_resource_names_the_element(fhir: httpx.Client) -> None:
    body = outcome(fhir.post("/Patient", json={"resourceType": "Patient", "birthDate": "17/05/1980"}), 400)
    assert any("birthDate" in e for i in body["issue"] for e in i.get("expression", []))


def test_unknown_element_is_refused(fhir: httpx.Client) -> None:
    body = outcome(fhir.post("/Patient", json={"resourceType": "Patient", "colour": "blue"}), 400)
    assert any("colour" in e for i in body["issue"] for e in i.get("expression", []))


def test_unknown_type(fhir: httpx.Client) -> None:
    outcome(fhir.get("/Spaceship/1"), 404)
    outcome(fhir.post("/Spaceship", json={"resourceType": "Spaceship"}), 404)


def test_unknown_id(fhir: httpx.Client) -> None:
    outcome(fhir.get("/Patient/does-not-exist"), 404)


def test_id_mismatch(fhir: httpx.Client, unique: str) -> None:
    outcome(fhir.put(f"/Patient/a{unique}", json=patient(unique) | {"id": f"b{unique}"}), 400)


def test_body_type_differs_from_url(fhir: httpx.Client) -> None:
    outcome(fhir.post("/Patient", json={"resourceType": "Practitioner"}), 400)


def test_invalid_id(fhir: httpx.Client, unique: str) -> None:
    outcome(fhir.put("/Patient/bad_id!", json=patient(unique) | {"id": "bad_id!"}), 400)


def test_body_over_the_limit(server, fhir: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    big = b'{"resourceType":"Patient","text":"' + b"x" * (65 * 1024 * 1024) + b'"}'
    outcome(fhir.post("/Patient", content=big), 413)


def test_unsupported_media_type(fhir: httpx.Client) -> None:
    outcome(fhir.post("/Patient", content=b"%PDF-1.4", headers={"Content-Type": "application/pdf"}), 415)
    outcome(fhir.post("/Patient", content=b"hello", headers={"Content-Type": "text/plain"}), 415)


def test_unsupported_method(fhir: httpx.Client) -> None:
    outcome(fhir.post("/Patient/123"), 405)


@pytest.mark.parametrize("body", [b"[]", b"42", b'"x"', b"null", b"{}"])
def test_bodies_that_are_not_resources(fhir: httpx.Client, body: bytes) -> None:
    outcome(fhir.post("/Patient", content=body), 400)


def test_malformed_bundle(fhir: httpx.Client) -> None:
    outcome(fhir.post("", json={"resourceType": "Bundle", "type": "collection"}), 400)
    outcome(fhir.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {}}]}), 400)


def test_bad_if_match(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    outcome(fhir.put(f"/Patient/{created['id']}", json=created, headers={"If-Match": "banana"}), 400)


def test_bad_search_values(fhir: httpx.Client) -> None:
    strict = {"Prefer": "handling=strict"}
    outcome(fhir.get("/Patient", params={"birthdate": "yesterday"}, headers=strict), 400)
    outcome(fhir.get("/Patient", params={"_count": "-1"}, headers=strict), 400)
    outcome(fhir.get("/Patient", params={"_sort": "nosuchparam"}, headers=strict), 400)
    outcome(fhir.get("/Patient", params={"_page": "garbage"}), 400)
    # lenient (the default) drops what it cannot use and says so in the self link
    lenient = fhir.get("/Patient", params={"birthdate": "yesterday", "_count": "1"})
    assert lenient.status_code == 200
    assert "birthdate" not in lenient.json()["link"][0]["url"]


def test_code_outside_a_required_binding(fhir: httpx.Client) -> None:
    body = outcome(fhir.post("/Patient", json={"resourceType": "Patient", "gender": "bogus"}), 400)
    assert body["issue"][0]["expression"] == ["Patient.gender"]
    assert body["issue"][0]["code"] == "code-invalid"
