"""The Binary of a document names it in securityContext, whichever way the document arrived
(ITI-65, ITI-105): its bytes are readable under that document's rules only (docs/ACCESS-RULES.md)."""

from __future__ import annotations

import base64

import httpx

from tests.mhd.documents import PDF, document_reference, provide_bundle

JSON = {"Accept": "application/fhir+json"}


def _stored_binary(fhir: httpx.Client, document: dict) -> dict:
    binary = fhir.get("/" + document["content"][0]["attachment"]["url"], headers=JSON)
    assert binary.status_code == 200, binary.text
    return binary.json()


def _document_of(fhir: httpx.Client, master_id: str) -> dict:
    found = fhir.get("/DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master_id}"}).json()
    [document] = [e["resource"] for e in found.get("entry", [])]
    return document


def test_provide_bundle_binary_names_its_document(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    response = fhir.post("", json=provide_bundle({"reference": f"Patient/{known_patient['id']}"}, master_id))
    assert response.status_code == 200, response.text
    document = _document_of(fhir, master_id)
    assert _stored_binary(fhir, document)["securityContext"] == {"reference": f"DocumentReference/{document['id']}"}


def test_provide_bundle_keeps_a_security_context_naming_the_document(fhir: httpx.Client, known_patient: dict,
                                                                     master_id: str) -> None:
    bundle = provide_bundle({"reference": f"Patient/{known_patient['id']}"}, master_id)
    document_entry, binary_entry = bundle["entry"][1], bundle["entry"][2]
    binary_entry["resource"]["securityContext"] = {"reference": document_entry["fullUrl"]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    document = _document_of(fhir, master_id)
    assert _stored_binary(fhir, document)["securityContext"] == {"reference": f"DocumentReference/{document['id']}"}


def test_provide_bundle_binary_naming_another_resource_is_refused(fhir: httpx.Client, known_patient: dict,
                                                                  master_id: str) -> None:
    """Under the patient's own rules the bytes of a masked document would be readable: refused whole."""
    bundle = provide_bundle({"reference": f"Patient/{known_patient['id']}"}, master_id)
    bundle["entry"][2]["resource"]["securityContext"] = {"reference": f"Patient/{known_patient['id']}"}
    response = fhir.post("", json=bundle)
    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["Bundle.entry[2].resource.securityContext"]
    assert f"'Patient/{known_patient['id']}' does not name the DocumentReference" in issue["diagnostics"]
    found = fhir.get("/DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master_id}"}).json()
    assert found["total"] == 0
    assert fhir.get("/List", params={"patient": known_patient["id"]}).json()["total"] == 0


def test_one_binary_for_two_documents_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle = provide_bundle({"reference": f"Patient/{known_patient['id']}"}, master_id)
    second = {**bundle["entry"][1], "fullUrl": "urn:uuid:7c1f7a34-2a4b-4d7e-9d0e-3c0b8d1e5f60"}
    second["resource"] = {**second["resource"], "masterIdentifier": {"system": "urn:ietf:rfc:3986",
                                                                      "value": f"urn:oid:{master_id}.2"}}
    bundle["entry"].append(second)
    response = fhir.post("", json=bundle)
    assert response.status_code == 422, response.text
    assert "content of 2 DocumentReferences" in response.json()["issue"][0]["diagnostics"]
    assert fhir.get("/DocumentReference", params={"patient": known_patient["id"]}).json()["total"] == 0


def test_simplified_publish_binary_names_its_document(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "data": base64.b64encode(PDF).decode(),
                  "title": "CR", "creation": "2026-07-02T08:30:00+02:00"}
    doc = document_reference({"reference": f"Patient/{known_patient['id']}"}, master_id, attachment,
                             profile="PDSm-SimplifiedPublish")
    response = fhir.post("/DocumentReference", json=doc)
    assert response.status_code == 201, response.text
    document = response.json()
    assert _stored_binary(fhir, document)["securityContext"] == {"reference": f"DocumentReference/{document['id']}"}
