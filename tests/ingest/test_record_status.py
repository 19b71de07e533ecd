"""A record that refuses deposits (Patient record-status `opposed` or `closed`, issue 12) refuses
them on every FHIR intake channel: 403 with an OperationOutcome saying so, and nothing of the
request stored. The refusal itself is the access core's (a FhirError 403 inside the write's
transaction); these tests hold each channel to answering it right."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import httpx
import pytest

from cda.convert import convert_cda
from tests.ingest.record_status import hospital, hospital_root  # noqa: F401 (fixtures)
from tests.ingest.record_status import REFUSING, refused_with_outcome, refusing_patient, total
from tests.mhd.documents import PDF, document_reference, patient, provide_bundle

LOINC = "http://loinc.org"
CDA_FIXTURES = Path(__file__).parent.parent / "cda" / "fixtures"


def _ins() -> str:
    return "2" + str(uuid.uuid4().int)[:14]


def _observation(subject: str, identifier: str) -> dict:
    return {"resourceType": "Observation", "status": "final", "identifier": [{"system": "urn:test:obs", "value": identifier}],
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]}, "subject": {"reference": subject},
            "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}


@pytest.fixture(params=REFUSING)
def refusing(request: pytest.FixtureRequest, fhir: httpx.Client) -> tuple[dict, str]:
    return refusing_patient(fhir, patient(_ins()), request.param), request.param


def test_create_is_refused(fhir: httpx.Client, hospital: httpx.Client, refusing: tuple[dict, str]) -> None:
    record, status = refusing
    marker = uuid.uuid4().hex
    refused_with_outcome(hospital.post("/Observation", json=_observation(f"Patient/{record['id']}", marker)), status)
    assert total(fhir, "/Observation", identifier=f"urn:test:obs|{marker}") == 0


def test_transaction_is_refused_whole(fhir: httpx.Client, hospital: httpx.Client, refusing: tuple[dict, str]) -> None:
    """The entry for an open record is not kept when another entry's record refuses deposits."""
    record, status = refusing
    open_record = fhir.post("/Patient", json=patient(_ins())).json()
    marker = uuid.uuid4().hex
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": _observation(f"Patient/{open_record['id']}", marker),
         "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": _observation(f"Patient/{record['id']}", marker),
         "request": {"method": "POST", "url": "Observation"}},
    ]}
    refused_with_outcome(hospital.post("", json=bundle), status)
    assert total(fhir, "/Observation", identifier=f"urn:test:obs|{marker}") == 0


def test_provide_document_bundle_is_refused(fhir: httpx.Client, hospital: httpx.Client, refusing: tuple[dict, str]) -> None:
    record, status = refusing
    master_id = f"1.2.250.1.999.1.1.7.{uuid.uuid4().int % 10**12}"
    refused_with_outcome(hospital.post("", json=provide_bundle({"reference": f"Patient/{record['id']}"}, master_id)), status)
    assert total(fhir, "/DocumentReference", identifier=f"urn:ietf:rfc:3986|urn:oid:{master_id}") == 0
    assert total(fhir, "/List", identifier=f"urn:ietf:rfc:3986|urn:oid:{master_id}.99") == 0


def test_provide_document_bundle_by_ins_is_refused(fhir: httpx.Client, hospital: httpx.Client,
                                                  refusing: tuple[dict, str]) -> None:
    record, status = refusing
    master_id = f"1.2.250.1.999.1.1.7.{uuid.uuid4().int % 10**12}"
    refused_with_outcome(hospital.post("", json=provide_bundle({"identifier": record["identifier"][0]}, master_id)), status)
    assert total(fhir, "/DocumentReference", identifier=f"urn:ietf:rfc:3986|urn:oid:{master_id}") == 0


def test_simplified_publish_is_refused(fhir: httpx.Client, hospital: httpx.Client, refusing: tuple[dict, str]) -> None:
    record, status = refusing
    master_id = f"1.2.250.1.999.1.1.7.{uuid.uuid4().int % 10**12}"
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "data": base64.b64encode(PDF).decode(),
                  "title": "CR", "creation": "2026-07-02T08:30:00+02:00"}
    doc = document_reference({"reference": f"Patient/{record['id']}"}, master_id, attachment,
                             profile="PDSm-SimplifiedPublish")
    refused_with_outcome(hospital.post("/DocumentReference", json=doc), status)
    assert total(fhir, "/DocumentReference", identifier=f"urn:ietf:rfc:3986|urn:oid:{master_id}") == 0


@pytest.mark.parametrize("status", REFUSING)
def test_cda_ingest_is_refused(hospital_root: httpx.Client, fhir: httpx.Client, status: str) -> None:
    """The CDA names the patient by INS: its record is found and refuses the document."""
    digits = str(uuid.uuid4().int)[:12]
    document = (CDA_FIXTURES / "ldl_ses_discharge_letter.xml").read_bytes().replace(
        b'extension="262077512345678"', f'extension="262{digits}"'.encode()).replace(
        b'IPP000417', f"IPP{digits}".encode()).replace(
        b"SEJ-2024-000417", f"SEJ-{digits}".encode()).replace(b"LDL-MED-", f"LDL-{digits}-".encode()).replace(b'"1.2.250.1.999.1.1.2.2024.1"', f'"1.2.250.1.999.1.1.2.{digits}.1"'.encode())
    conversion = convert_cda(document)
    [patient_entry] = [e for e in conversion.bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    refusing_patient(fhir, patient_entry["resource"], status)
    response = hospital_root.post("/ingest/cda", content=document, headers={"Content-Type": "application/hl7-cda+xml"})
    refused_with_outcome(response, status)
    master = conversion.master_identifier
    assert total(fhir, "/DocumentReference", identifier=f"{master['system']}|{master['value']}") == 0
