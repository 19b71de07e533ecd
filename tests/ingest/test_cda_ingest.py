"""POST /ingest/cda: CDA R2 documents land in the record, once, with their metadata."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

FIXTURES = Path(__file__).parent.parent / "cda" / "fixtures"
CDA = {"Content-Type": "application/hl7-cda+xml"}


@pytest.fixture(scope="module")
def ingest(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with server.client(server.root_url, timeout=60) as client:
        yield client


def _post(ingest: httpx.Client, name: str) -> httpx.Response:
    return ingest.post("/ingest/cda", content=(FIXTURES / name).read_bytes(), headers=CDA)


def _document(fhir: httpx.Client, response: httpx.Response) -> dict:
    path = response.headers["Location"].split("/fhir")[1].split("/_history")[0]
    return fhir.get(path).json()


def test_discharge_letter_lands_once(ingest: httpx.Client, fhir: httpx.Client) -> None:
    first = _post(ingest, "ldl_ses_discharge_letter.xml")
    assert first.status_code == 201, first.text
    doc = _document(fhir, first)
    assert doc["resourceType"] == "DocumentReference" and doc["status"] == "current"
    assert doc["type"]["coding"][0]["code"] == "11490-0"
    assert doc["subject"]["reference"].startswith("Patient/")
    patient = fhir.get("/" + doc["subject"]["reference"]).json()
    assert any(i["system"].startswith("urn:oid:1.2.250.1.213.1.4.") for i in patient["identifier"])
    binary = fhir.get("/" + doc["content"][0]["attachment"]["url"], headers={"Accept": "*/*"})
    assert binary.content == (FIXTURES / "ldl_ses_discharge_letter.xml").read_bytes()
    again = _post(ingest, "ldl_ses_discharge_letter.xml")
    assert again.status_code == 200
    assert again.headers["Location"] == first.headers["Location"]
    assert _document(fhir, again)["meta"]["versionId"] == doc["meta"]["versionId"]
    assert fhir.get(f"/Binary/{doc['content'][0]['attachment']['url'].split('/')[1]}", headers={"Accept": "application/fhir+json"}).json()["meta"]["versionId"] == "1"


def test_prescription_lines_become_medication_requests(ingest: httpx.Client, fhir: httpx.Client) -> None:
    response = _post(ingest, "ep_med_dm_prescription.xml")
    assert response.status_code in (200, 201), response.text
    doc = _document(fhir, response)
    requests = fhir.get("/MedicationRequest", params={"subject": doc["subject"]["reference"]}).json()
    linked = [e["resource"] for e in requests.get("entry", [])
              if any(s.get("reference") == f"DocumentReference/{doc['id']}" for s in e["resource"].get("supportingInformation", []))]
    assert len(linked) >= 2
    assert all(r["status"] and r["intent"] for r in linked)


def test_replacement_supersedes(ingest: httpx.Client, fhir: httpx.Client) -> None:
    original = _document(fhir, _post(ingest, "cr_bio_lab_report.xml"))
    replacing = _post(ingest, "cr_bio_lab_report_rplc.xml")
    assert replacing.status_code in (200, 201), replacing.text
    assert fhir.get(f"/DocumentReference/{original['id']}").json()["status"] == "superseded"
    assert _document(fhir, replacing)["status"] == "current"


def test_level1_pdf_is_the_rendering_of_the_one_content(ingest: httpx.Client, fhir: httpx.Client) -> None:
    doc = _document(fhir, _post(ingest, "level1_pdf.xml"))
    [content] = doc["content"]
    assert content["attachment"]["contentType"] == "text/xml"
    assert content["format"]["code"] == "urn:ihe:iti:xds-sd:pdf:2008"
    [rendering] = [e["valueAttachment"] for e in content["extension"]
                   if e["url"] == "https://fhir-server.example.org/StructureDefinition/document-rendering"]
    assert rendering["contentType"] == "application/pdf"
    assert fhir.get("/" + rendering["url"], headers={"Accept": "application/pdf"}).content.startswith(b"%PDF")


@pytest.mark.parametrize(("body", "status"), [
    (b"<not-closed", 400),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ClinicalDocument xmlns="urn:hl7-org:v3">&e;</ClinicalDocument>', 400),
    (b'<?xml version="1.0"?><html><body/></html>', 400),
    (b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/></ClinicalDocument>', 422),
])
def test_bad_documents_are_refused_with_an_outcome(ingest: httpx.Client, body: bytes, status: int) -> None:
    response = ingest.post("/ingest/cda", content=body, headers=CDA)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "root:" not in response.text  # nothing of /etc/passwd was read


def test_wrong_media_type(ingest: httpx.Client) -> None:
    assert ingest.post("/ingest/cda", content=b"{}", headers={"Content-Type": "application/json"}).status_code == 415
