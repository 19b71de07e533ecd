"""create, read, vread, update, patch, delete over HTTP (FHIR R4 http.html)."""

from __future__ import annotations

import json

import httpx

INS = "urn:oid:1.2.250.1.213.1.4.8"


def patient(unique: str, family: str = "Martin") -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": INS, "value": f"1{unique}"}],
        "name": [{"family": family, "given": ["Élise"]}],
        "birthDate": "1980-05-17",
    }


def test_create_assigns_id_version_and_headers(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("/Patient", json=patient(unique))
    assert response.status_code == 201
    body = response.json()
    assert body["id"] and body["meta"]["versionId"] == "1" and body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert response.headers["Last-Modified"].endswith("GMT")


def test_create_ignores_client_version_metadata(fhir: httpx.Client, unique: str) -> None:
    sent = patient(unique) | {"id": "client-chosen", "meta": {"versionId": "42", "lastUpdated": "2000-01-01T00:00:00Z"}}
    body = fhir.post("/Patient", json=sent).json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert not body["meta"]["lastUpdated"].startswith("2000")


def test_read_and_vread(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    pid = created["id"]
    updated = fhir.put(f"/Patient/{pid}", json=created | {"gender": "female"}).json()
    assert updated["meta"]["versionId"] == "2"
    current = fhir.get(f"/Patient/{pid}")
    assert current.status_code == 200 and current.json()["gender"] == "female"
    assert current.headers["ETag"] == 'W/"2"'
    first = fhir.get(f"/Patient/{pid}/_history/1")
    assert first.status_code == 200 and "gender" not in first.json()
    assert fhir.get(f"/Patient/{pid}/_history/9").status_code == 404


def test_update_as_create_with_client_id(fhir: httpx.Client, unique: str) -> None:
    pid = f"client-{unique}"
    response = fhir.put(f"/Patient/{pid}", json=patient(unique) | {"id": pid})
    assert response.status_code == 201
    assert response.json()["id"] == pid and response.json()["meta"]["versionId"] == "1"
    assert fhir.get(f"/Patient/{pid}").status_code == 200


def test_update_with_same_content_makes_no_new_version(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    again = fhir.put(f"/Patient/{created['id']}", json=created)
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == "1"


def test_json_patch(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    ops = [{"op": "replace", "path": "/birthDate", "value": "1981-01-01"}, {"op": "add", "path": "/gender", "value": "female"}]
    response = fhir.patch(f"/Patient/{created['id']}", content=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 200
    body = response.json()
    assert body["birthDate"] == "1981-01-01" and body["gender"] == "female" and body["meta"]["versionId"] == "2"


def test_patch_that_breaks_the_resource_changes_nothing(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    ops = [{"op": "replace", "path": "/birthDate", "value": "not-a-date"}]
    response = fhir.patch(f"/Patient/{created['id']}", content=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert fhir.get(f"/Patient/{created['id']}").json()["meta"]["versionId"] == "1"


def test_delete_is_versioned_and_read_answers_410(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    pid = created["id"]
    assert fhir.delete(f"/Patient/{pid}").status_code in (200, 204)
    gone = fhir.get(f"/Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json()["resourceType"] == "OperationOutcome"
    assert fhir.get(f"/Patient/{pid}/_history/1").status_code == 200
    history = fhir.get(f"/Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert fhir.get("/Patient", params={"_id": pid}).json()["total"] == 0
    # Updating a deleted resource brings it back as a new version.
    revived = fhir.put(f"/Patient/{pid}", json=created)
    assert revived.status_code == 201 and revived.json()["meta"]["versionId"] == "3"


def test_prefer_return(fhir: httpx.Client, unique: str) -> None:
    minimal = fhir.post("/Patient", json=patient(unique), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and "Location" in minimal.headers
    outcome = fhir.post("/Patient", json=patient(unique), headers={"Prefer": "return=OperationOutcome"})
    assert outcome.json()["resourceType"] == "OperationOutcome"
    full = fhir.post("/Patient", json=patient(unique), headers={"Prefer": "return=representation"})
    assert full.json()["resourceType"] == "Patient"


def test_format_and_accept(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    plain = fhir.get(f"/Patient/{created['id']}", headers={"Accept": "application/json"})
    assert plain.headers["content-type"].startswith("application/json")
    by_format = fhir.get(f"/Patient/{created['id']}", params={"_format": "json"}, headers={"Accept": "text/html"})
    assert by_format.status_code == 200 and by_format.headers["content-type"].startswith("application/fhir+json")
    pdf = fhir.get(f"/Patient/{created['id']}", headers={"Accept": "application/pdf"})
    assert pdf.status_code == 406 and pdf.json()["resourceType"] == "OperationOutcome"


def test_elements_and_summary_on_read(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique) | {"text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}).json()
    subset = fhir.get(f"/Patient/{created['id']}", params={"_elements": "birthDate"}).json()
    assert set(subset) == {"resourceType", "id", "meta", "birthDate"}
    assert any(t["code"] == "SUBSETTED" for t in subset["meta"]["tag"])
    summary = fhir.get(f"/Patient/{created['id']}", params={"_summary": "true"}).json()
    assert "name" in summary and "text" not in summary
