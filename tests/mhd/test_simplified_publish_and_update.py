"""ITI-105 Simplified Publish, PDSm metadata update, isArchived."""

from __future__ import annotations

import base64
import json

import httpx

from tests.mhd.documents import IS_ARCHIVED, PDF, document_reference, sha1

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
