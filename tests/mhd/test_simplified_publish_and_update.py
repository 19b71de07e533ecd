"""ITI-105 Simplified Publish, PDSm metadata update, isArchived."""

from __future__ import annotations

import base64
import json

import httpx

from tests.mhd.documents import IS_ARCHIVED, PDF, PDSM, document_reference, sha1

PATCH = {"Content-Type": "application/json-patch+json"}


def _publish(fhir: httpx.Client, patient_id: str, master_id: str) -> httpx.Response:
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "data": base64.b64encode(PDF).decode(),
                  "title": "CR", "creation": "2026-07-02T08:30:00+02:00"}
    doc = document_reference({"reference": f"Patient/{patient_id}"}, master_id, attachment, profile="PDSm-SimplifiedPublish")
    return fhir.post("/DocumentReference", json=doc)


def test_simplified_publish_stores_the_binary_and_fills_the_attachment(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    response = _publish(fhir, known_patient["id"], master_id)
    assert response.status_code == 201, response.text
    attachment = response.json()["content"][0]["attachment"]
    assert "data" not in attachment
    assert attachment["size"] == len(PDF) and attachment["hash"] == sha1(PDF)
    assert attachment["url"].startswith("Binary/")
    assert fhir.get("/" + attachment["url"], headers={"Accept": "application/pdf"}).content == PDF
    assert _publish(fhir, known_patient["id"], master_id).status_code == 409


def test_metadata_update_changes_only_what_pdsm_allows(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    created = _publish(fhir, known_patient["id"], master_id).json()
    url = f"/DocumentReference?identifier=urn:ietf:rfc:3986|urn:oid:{master_id}"
    archived = [i for i, e in enumerate(created["extension"]) if e["url"] == IS_ARCHIVED][0]
    ops = [{"op": "replace", "path": "/status", "value": "entered-in-error"},
           {"op": "replace", "path": f"/extension/{archived}/valueBoolean", "value": True},
           {"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument", "code": "INVISIBLE_PATIENT"}]}}]
    response = fhir.patch(url, content=json.dumps(ops), headers=PATCH)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["versionId"] == "2" and response.json()["status"] == "entered-in-error"
    archived_docs = fhir.get("/DocumentReference", params={"patient": known_patient["id"], "isArchived": "true"}).json()
    assert archived_docs["total"] == 1
    refused = fhir.patch(url, content=json.dumps([{"op": "add", "path": "/description", "value": "x"}]), headers=PATCH)
    assert refused.status_code == 422
    assert "DocumentReference.description" in refused.json()["issue"][0]["expression"]
    assert fhir.get(f"/DocumentReference/{created['id']}").json()["meta"]["versionId"] == "2"


def _document(patient_id: str, master_id: str, *contents: dict) -> dict:
    doc = document_reference({"reference": f"Patient/{patient_id}"}, master_id, contents[0], profile="PDSm-SimplifiedPublish")
    doc["content"] = [{**doc["content"][0], "attachment": attachment} for attachment in contents]
    return doc


def test_simplified_publish_with_data_that_is_not_base64_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    attachment = {"contentType": "application/pdf", "data": "%%%" + base64.b64encode(PDF).decode(), "title": "CR"}
    response = fhir.post("/DocumentReference", json=_document(known_patient["id"], master_id, attachment))
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    # Refused by the datatype check (a base64Binary value that is not base64), before any Binary is made.
    assert (issue["code"], issue["expression"]) == ("value", ["DocumentReference.content[0].attachment.data"])
    assert "base64" in issue["diagnostics"]
    assert fhir.get("/DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master_id}"}).json()["total"] == 0


def test_simplified_publish_turns_every_content_with_data_into_a_binary(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    stored = fhir.post("/Binary", content=b"already here", headers={"Content-Type": "text/plain"}).json()
    existing = {"contentType": "text/plain", "url": f"Binary/{stored['id']}", "size": 12, "hash": sha1(b"already here")}
    carried = {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode(), "title": "CR"}
    doc = _document(known_patient["id"], master_id, existing, carried)
    del doc["meta"]  # the PDSm profile wants data in every content
    response = fhir.post("/DocumentReference", json=doc)
    assert response.status_code == 201, response.text
    first, second = (c["attachment"] for c in response.json()["content"])
    assert first == existing
    assert "data" not in second and (second["size"], second["hash"]) == (len(PDF), sha1(PDF))
    binary = fhir.get("/" + second["url"], headers={"Accept": "application/fhir+json"}).json()
    assert binary["contentType"] == "application/pdf"
    assert base64.b64decode(binary["data"]) == PDF


def test_simplified_publish_is_stored_under_the_comprehensive_profile(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "data": base64.b64encode(PDF).decode(),
                  "title": "CR", "creation": "2026-07-02T08:30:00+02:00"}
    response = fhir.post("/DocumentReference", json=_document(known_patient["id"], master_id, attachment))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["meta"]["profile"] == [f"{PDSM}/pdsm-comprehensive-document-reference"]
    # Another profile the sender claims is kept as it is.
    both = _document(known_patient["id"], master_id + ".2", attachment)
    both["meta"]["profile"].append("http://hl7.org/fhir/StructureDefinition/DocumentReference")
    response = fhir.post("/DocumentReference", json=both)
    assert response.status_code == 201, response.text
    assert response.json()["meta"]["profile"] == [f"{PDSM}/pdsm-comprehensive-document-reference",
                                                   "http://hl7.org/fhir/StructureDefinition/DocumentReference"]
    without_profile = _document(known_patient["id"], master_id + ".1", attachment)
    del without_profile["meta"]
    response = fhir.post("/DocumentReference", json=without_profile)
    assert response.status_code == 201, response.text
    assert "profile" not in response.json().get("meta", {})


def test_attachment_without_content_type_becomes_an_octet_stream_binary(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    attachment = {"data": base64.b64encode(b"raw bytes").decode(), "title": "CR"}
    doc = _document(known_patient["id"], master_id, attachment)
    del doc["meta"]
    response = fhir.post("/DocumentReference", json=doc)
    assert response.status_code == 201, response.text
    url = response.json()["content"][0]["attachment"]["url"]
    assert fhir.get("/" + url, headers={"Accept": "application/fhir+json"}).json()["contentType"] == "application/octet-stream"


def test_document_reference_without_data_is_a_plain_create(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    """Pointing at a document elsewhere is not a publication: no ITI-65 attachment check applies."""
    attachment = {"contentType": "application/pdf", "url": "https://documents.example.org/cr.pdf"}
    doc = document_reference({"reference": f"Patient/{known_patient['id']}"}, master_id, attachment)
    del doc["meta"]
    response = fhir.post("/DocumentReference", json=doc)
    assert response.status_code == 201, response.text
    assert response.json()["content"][0]["attachment"]["url"] == "https://documents.example.org/cr.pdf"


def _published(fhir: httpx.Client, patient_id: str, master_id: str, extensions: list[dict] | None) -> dict:
    attachment = {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode(), "title": "CR"}
    doc = _document(patient_id, master_id, attachment)
    del doc["meta"]
    if extensions is None:
        del doc["extension"]
    else:
        doc["extension"] = extensions
    response = fhir.post("/DocumentReference", json=doc)
    assert response.status_code == 201, response.text
    return response.json()


def test_metadata_update_of_a_document_without_extensions(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    created = _published(fhir, known_patient["id"], master_id, None)
    response = fhir.patch(f"/DocumentReference/{created['id']}", headers=PATCH,
                          content=json.dumps([{"op": "replace", "path": "/status", "value": "superseded"}]))
    assert response.status_code == 200, response.text
    refused = fhir.patch(f"/DocumentReference/{created['id']}", headers=PATCH,
                         content=json.dumps([{"op": "add", "path": "/extension", "value": [OTHER_EXTENSION]}]))
    assert refused.status_code == 422, refused.text
    assert refused.json()["issue"][0]["expression"] == ["DocumentReference.extension"]


OTHER_EXTENSION = {"url": "https://example.org/fhir/StructureDefinition/note", "valueString": "avant"}


def test_metadata_update_may_not_touch_other_extensions(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    created = _published(fhir, known_patient["id"], master_id, [{"url": IS_ARCHIVED, "valueBoolean": False}, OTHER_EXTENSION])
    for operations in ([{"op": "replace", "path": "/extension/1/valueString", "value": "après"}],
                       [{"op": "remove", "path": "/extension/1"}]):
        refused = fhir.patch(f"/DocumentReference/{created['id']}", headers=PATCH, content=json.dumps(operations))
        assert refused.status_code == 422, refused.text
        issue = refused.json()["issue"][0]
        assert (issue["severity"], issue["code"], issue["expression"]) == ("error", "business-rule", ["DocumentReference.extension"])
        assert "changes extension" in issue["diagnostics"]
    archive = fhir.patch(f"/DocumentReference/{created['id']}", headers=PATCH,
                         content=json.dumps([{"op": "replace", "path": "/extension/0/valueBoolean", "value": True}]))
    assert archive.status_code == 200, archive.text
    assert archive.json()["extension"] == [{"url": IS_ARCHIVED, "valueBoolean": True}, OTHER_EXTENSION]


def test_metadata_update_names_exactly_what_it_refuses(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    created = _published(fhir, known_patient["id"], master_id, [{"url": IS_ARCHIVED, "valueBoolean": False}])
    operations = [{"op": "add", "path": "/description", "value": "x"}, {"op": "replace", "path": "/status", "value": "superseded"},
                  {"op": "replace", "path": "/date", "value": "2026-08-01T10:00:00+02:00"}]
    refused = fhir.patch(f"/DocumentReference/{created['id']}", headers=PATCH, content=json.dumps(operations))
    assert refused.status_code == 422, refused.text
    issue = refused.json()["issue"][0]
    assert issue["expression"] == ["DocumentReference.date", "DocumentReference.description"]
    assert issue["diagnostics"].endswith("this patch changes date, description")
    assert fhir.get(f"/DocumentReference/{created['id']}").json()["meta"]["versionId"] == "1"
