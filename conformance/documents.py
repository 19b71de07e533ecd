"""ITI-65 Provide Document Bundles the tool sends: a SubmissionSet List, a DocumentReference and its
Binary, shaped by the ANS PDSm comprehensive profiles (which constrain IHE MHD comprehensive
metadata). Every identifier is under the run's test-only namespace or a fresh urn:uuid/urn:oid
under the 2.25 (UUID-derived) arc, so nothing can be mistaken for a real document or person."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from conformance.session import Session

PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition"
SUBMISSION_SET = {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]}
# ANS nomenclatures (NOS) used by PDSm for DocumentEntry metadata.
TRE_A03 = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
TRE_A11 = "https://mos.esante.gouv.fr/NOS/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode"
TRE_R02 = "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
TRE_A01 = "https://mos.esante.gouv.fr/NOS/TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice"
# DMP document visibility (TRE_A07): masked to professionals, invisible to the patient.
TRE_A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def sha1_base64(data: bytes) -> str:
    """Attachment.hash: the base64 of the SHA-1 of the raw document (FHIR R4 datatypes.html#Attachment)."""
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_oid() -> str:
    """A fresh OID under 2.25 (ITU-T X.667: an OID from a UUID), owned by nobody else."""
    return f"2.25.{uuid.uuid4().int}"


def provide_bundle(s: Session, patient_id: str, *, data: bytes = PDF, size: int | None = None,
                   hash_: str | None = None, labels: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """(bundle, masterIdentifier value) for one PDF document of the Patient `patient_id`."""
    list_urn, doc_urn, binary_urn = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    master = f"urn:oid:{test_oid()}"
    author = {"resourceType": "PractitionerRole", "id": "author",
              "practitioner": {"display": "Conformance Test Author"},
              "organization": {"display": "fhir-conformance"}}
    source_patient = {"resourceType": "Patient", "id": "source-patient",
                      "identifier": [{"system": s.system, "value": s.unique("source-patient")}],
                      "name": [{"family": "Conformance", "given": ["Test"]}], "gender": "unknown"}
    subject = {"reference": f"Patient/{patient_id}"}
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "url": binary_urn,
                  "size": len(data) if size is None else size, "hash": sha1_base64(data) if hash_ is None else hash_,
                  "title": "Conformance test document", "creation": "2026-01-01T09:00:00+01:00"}
    document = {
        "resourceType": "DocumentReference", "meta": {"profile": [f"{PDSM}/pdsm-comprehensive-document-reference"], **s.tag()},
        "contained": [source_patient, author],
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master},
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11490-0"}]},
        "category": [{"coding": [{"system": TRE_A03, "code": "10"}]}],
        "subject": subject, "date": "2026-01-01T10:00:00+01:00", "author": [{"reference": "#author"}],
        "custodian": {"identifier": {"system": s.system, "value": "custodian"}, "display": "fhir-conformance"},
        "securityLabel": [{"coding": [{"system": CONFIDENTIALITY, "code": "N"}]},
                          *({"coding": [{"system": TRE_A07, "code": label}]} for label in labels)],
        "content": [{"attachment": attachment, "format": {"system": TRE_A11, "code": "urn:ihe:iti:xds-sd:pdf:2008"}}],
        "context": {"sourcePatientInfo": {"reference": "#source-patient"},
                    "period": {"start": "2026-01-01T08:00:00+01:00", "end": "2026-01-01T09:00:00+01:00"},
                    "facilityType": {"coding": [{"system": TRE_R02, "code": "SA01"}]},
                    "practiceSetting": {"coding": [{"system": TRE_A01, "code": "ETABLISSEMENT"}]}},
    }
    submission = {
        "resourceType": "List", "meta": {"profile": [f"{PDSM}/PDSmSubmissionSetComprehensive"], **s.tag()},
        "contained": [author],
        "extension": [
            {"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
             "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{test_oid()}"}},
            {"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType",
             "valueCodeableConcept": {"coding": [{"system": TRE_R02, "code": "SA01"}]}}],
        "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{test_oid()}"},
                       {"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
        "status": "current", "mode": "working", "title": "Conformance test submission", "code": SUBMISSION_SET,
        "subject": subject, "date": "2026-01-01T10:00:00+01:00", "source": {"reference": "#author"},
        "entry": [{"item": {"reference": doc_urn}}],
    }
    binary = {"resourceType": "Binary", "meta": s.tag(), "contentType": "application/pdf",
              "data": base64.b64encode(data).decode()}
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "meta": {"profile": [f"{PDSM}/PDSmComprehensiveProvideDocumentBundle"]},
              "entry": [{"fullUrl": list_urn, "resource": submission, "request": {"method": "POST", "url": "List"}},
                        {"fullUrl": doc_urn, "resource": document, "request": {"method": "POST", "url": "DocumentReference"}},
                        {"fullUrl": binary_urn, "resource": binary, "request": {"method": "POST", "url": "Binary"}}]}
    return bundle, master
