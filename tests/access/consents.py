"""The privacy Consents of docs/ACCESS-RULES.md, as tests write them."""

from __future__ import annotations

from typing import Any

IDNATPS = "urn:oid:1.2.250.1.71.4.2.1"


def privacy_consent(patient: str, kind: str, idnatps: str | None = None, *, purpose: str | None = None) -> dict[str, Any]:
    """`kind` permit (authorise) or deny (block) the professional `idnatps`; with `purpose` ETREAT
    and no professional, a deny is the opposition to emergency access."""
    provision: dict[str, Any] = {"type": kind}
    if idnatps is not None:
        provision["actor"] = [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                    "code": "PRCP"}]},
                               "reference": {"identifier": {"system": IDNATPS, "value": idnatps}}}]
    if purpose is not None:
        provision["purpose"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": purpose}]
    return {"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"}, "provision": provision}
