"""IHE MHD entryUUID: the DocumentReference's official identifier carries its own fullUrl
(`urn:uuid:`); a transaction must keep it, so the document stays identifiable and updatable."""

from __future__ import annotations

import json

import httpx

from tests.mhd.documents import IS_ARCHIVED, provide_bundle

PATCH = {"Content-Type": "application/json-patch+json"}
VISIBILITY = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"


def _entry_uuid_bundle(subject: dict, master_id: str) -> tuple[dict, str, str]:
    bundle = provide_bundle(subject, master_id)
    submission, document = bundle["entry"][0], bundle["entry"][1]
    document["resource"]["identifier"][0]["value"] = document["fullUrl"]
    submission["resource"]["identifier"][1]["value"] = submission["fullUrl"]
    return bundle, document["fullUrl"], submission["fullUrl"]


def test_entry_uuid_is_kept_and_the_document_can_then_be_updated(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle, document_uuid, submission_uuid = _entry_uuid_bundle({"reference": f"Patient/{known_patient['id']}"}, master_id)
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    document_id = response.json()["entry"][1]["response"]["location"].split("/")[1]

    stored = fhir.get(f"/DocumentReference/{document_id}").json()
    assert [i["value"] for i in stored["identifier"] if i["use"] == "official"] == [document_uuid]
    by_entry_uuid = fhir.get("/DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|{document_uuid}"}).json()
    assert [e["resource"]["id"] for e in by_entry_uuid["entry"]] == [document_id]
    submission = fhir.get("/List", params={"patient": known_patient["id"]}).json()["entry"][0]["resource"]
    assert [i["value"] for i in submission["identifier"] if i["use"] == "official"] == [submission_uuid]
    # The reference to the document inside the SubmissionSet is rewritten like any reference.
    assert submission["entry"][0]["item"]["reference"] == f"DocumentReference/{document_id}"

    # PDSm metadata update (a patient masking the document): accepted, entryUUID unchanged.
    archived = [i for i, e in enumerate(stored["extension"]) if e["url"] == IS_ARCHIVED][0]
    ops = [{"op": "replace", "path": "/status", "value": "entered-in-error"},
           {"op": "replace", "path": f"/extension/{archived}/valueBoolean", "value": True},
           {"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"system": VISIBILITY, "code": "MASQUE_PS"}]}}]
    patched = fhir.patch(f"/DocumentReference/{document_id}", content=json.dumps(ops), headers=PATCH)
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "entered-in-error"
    assert [i["value"] for i in patched.json()["identifier"] if i["use"] == "official"] == [document_uuid]
