"""Reimbursement data as the insurer deposits it (docs/RECORD-CONTENTS.md, item d): one
ExplanationOfBenefit per reimbursed act or dispensed medicine. Used by the tests and `make bench`."""

from __future__ import annotations

from typing import Any

from fhir_server.security.callers import IDNATPS_SYSTEM

# Where the insurer's own claim numbers live (an example system: the test insurer's).
CLAIM_SYSTEM = "https://fhir-server.example.org/insurer/claim"
# CCAM, the classification of medical acts, by its OID in the ANS's CI-SIS.
CCAM = "urn:oid:1.2.250.1.213.2.5"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
FINESS = "urn:oid:1.2.250.1.71.4.2.2"


def eob(patient_reference: str, claim_number: str, *, idnatps: str = "810000000001", act: str = "YYYY010",
        day: str = "2026-10-02", charged: float = 30.0, reimbursed: float = 21.0,
        insurer_finess: str = "910000001") -> dict[str, Any]:
    """A professional act reimbursed by the compulsory insurer: who did it (IdNatPs), the act (CCAM),
    what was charged and what was reimbursed."""
    def amount(category: str, value: float) -> dict[str, Any]:
        return {"category": {"coding": [{"system": ADJUDICATION, "code": category}]},
                "amount": {"value": value, "currency": "EUR"}}

    return {
        "resourceType": "ExplanationOfBenefit",
        "identifier": [{"system": CLAIM_SYSTEM, "value": claim_number}],
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
        "use": "claim",
        "patient": {"reference": patient_reference},
        "billablePeriod": {"start": day, "end": day},
        "created": f"{day}T12:00:00+02:00",
        "insurer": {"identifier": {"system": FINESS, "value": insurer_finess}, "display": "Assurance Maladie"},
        "provider": {"identifier": {"system": IDNATPS_SYSTEM, "value": idnatps}},
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"display": "Assurance Maladie obligatoire"}}],
        "item": [{"sequence": 1, "productOrService": {"coding": [{"system": CCAM, "code": act}]},
                  "servicedDate": day,
                  "adjudication": [amount("submitted", charged), amount("benefit", reimbursed)]}],
        "total": [amount("submitted", charged), amount("benefit", reimbursed)],
    }
