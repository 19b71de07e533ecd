"""Builders of IHE MHD / PDSm resources for the tests (written for this project, following the
PDSm and IHE MHD profiles)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition"
INS_TEST = "urn:oid:1.2.250.1.213.1.4.10"
SUBMISSION_SET = {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]}
IS_ARCHIVED = "http://esante.gouv.fr/cisis/fhir/StructureDefinition/PDSm_isArchived"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
CDA = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
       b'<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/><title>CR</title></ClinicalDocument>\n')
AUTHOR = {"resourceType": "PractitionerRole", "id": "author",
          "practitioner": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810100293546"}, "display": "Dr Jean MARTIN"}}


def sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def patient(ins: str) -> dict[str, Any]:
    ins_type = {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "code": "INS-NIR-TEST"}]}
    return {"resourceType": "Patient", "identifier": [{"use": "official", "type": ins_type, "system": INS_TEST, "value": ins}],
            "name": [{"family": "DURAND", "given": ["Marie"]}], "gender": "female", "birthDate": "1948-03-09"}


def document_reference(subject: dict[str, Any], master_id: str, attachment: dict[str, Any], *,
                       format_code: str = "urn:ihe:iti:xds-sd:pdf:2008", relates_to: list[dict[str, Any]] | None = None,
                       profile: str = "pdsm-comprehensive-document-reference") -> dict[str, Any]:
    source_patient = {**patient("248039263001064"), "id": "source-patient"}
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [f"{PDSM}/{profile}"]},
        "contained": [source_patient, AUTHOR],
        "extension": [{"url": IS_ARCHIVED, "valueBoolean": False}],
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{master_id}"},
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11490-0", "display": "Lettre de liaison à la sortie d'un établissement de soins"}]},
        "category": [{"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument", "code": "10", "display": "Compte rendu"}]}],
        "subject": subject,
        "date": "2026-07-01T10:15:00+02:00",
        "author": [{"reference": "#author"}],
        "custodian": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1750000000"}, "display": "CH Exemple"},
        "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]}],
        "content": [{"attachment": attachment,
                     "format": {"system": "https://mos.esante.gouv.fr/NOS/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode", "code": format_code}}],
        "context": {"sourcePatientInfo": {"reference": "#source-patient"}, "period": {"start": "2026-06-25T08:00:00+02:00", "end": "2026-07-01T09:00:00+02:00"},
                    "facilityType": {"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite", "code": "SA01"}]},
                    "practiceSetting": {"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice", "code": "ETABLISSEMENT"}]}},
    }
    if relates_to:
        doc["relatesTo"] = relates_to
    return doc


def provide_bundle(subject: dict[str, Any], master_id: str, *, data: bytes = PDF, content_type: str = "application/pdf",
                   size: int | None = None, hash_: str | None = None, format_code: str = "urn:ihe:iti:xds-sd:pdf:2008",
                   relates_to: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    binary_url, doc_url, list_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    attachment = {"contentType": content_type, "language": "fr-FR", "url": binary_url,
                  "size": len(data) if size is None else size, "hash": sha1(data) if hash_ is None else hash_,
                  "title": "Lettre de liaison de sortie", "creation": "2026-07-01T09:50:00+02:00"}
    submission = {
        "resourceType": "List",
        "meta": {"profile": [f"{PDSM}/PDSmSubmissionSetComprehensive"]},
        "contained": [AUTHOR],
        "extension": [
            {"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId", "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.1.1"}},
            {"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType", "valueCodeableConcept": {"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite", "code": "SA01"}]}},
        ],
        "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{master_id}.99"},
                       {"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
        "status": "current", "mode": "working", "title": "Lot de soumission", "code": SUBMISSION_SET,
        "subject": subject, "date": "2026-07-01T10:15:00+02:00", "source": {"reference": "#author"},
        "entry": [{"item": {"reference": doc_url}}],
    }
    return {
        "resourceType": "Bundle", "type": "transaction",
        "meta": {"profile": [f"{PDSM}/PDSmComprehensiveProvideDocumentBundle"]},
        "entry": [
            {"fullUrl": list_url, "resource": submission, "request": {"method": "POST", "url": "List"}},
            {"fullUrl": doc_url, "resource": document_reference(subject, master_id, attachment, format_code=format_code, relates_to=relates_to),
             "request": {"method": "POST", "url": "DocumentReference"}},
            {"fullUrl": binary_url, "resource": {"resourceType": "Binary", "contentType": content_type, "data": base64.b64encode(data).decode()},
             "request": {"method": "POST", "url": "Binary"}},
        ],
    }
