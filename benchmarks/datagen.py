"""Synthetic records: patients with INS identifiers and their documents, appointments, messages, consents.

Everything is derived from the patient number, so a run can be repeated and a later, larger scale
extends an earlier one instead of duplicating it. Each patient is one self-contained group of
entries linked by `urn:uuid:` references, and groups are packed into transaction bundles.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

DOCUMENTS_PER_PATIENT = 10
FIRST_DATE = date(2015, 1, 1)
DAYS_SPREAD = 10 * 365
NAMESPACE = uuid.UUID("6f1c3a52-8a3e-4b8e-9a41-2f7d0c1e5b10")


@cache
def codes() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "data" / "codes.json").read_text(encoding="utf-8"))


def ins_value(patient: int) -> str:
    """A 13-character INS (NIR-shaped) unique to the patient number."""
    return f"{1_800_000_000_000 + patient}"


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(map(str, parts))))


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def document_type(n: int) -> tuple[str, str]:
    pool = codes()["document_types"]["codes"]
    return pool[n % len(pool)][0], pool[n % len(pool)][1]


def _day(patient: int, n: int) -> date:
    # A multiplicative spread: documents of one patient fall across the ten years, not in a row.
    return FIRST_DATE + timedelta(days=(patient * 7919 + n * 104_729) % DAYS_SPREAD)


def patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": codes()["ins_system"], "value": ins_value(n)}],
        "name": [{"family": f"NOM{n}", "given": [f"Prenom{n % 97}"]}],
        "gender": "female" if n % 2 else "male",
        "birthDate": (date(1940, 1, 1) + timedelta(days=(n * 37) % 25_000)).isoformat(),
    }


def binary(content: bytes, content_type: str) -> dict[str, Any]:
    return {"resourceType": "Binary", "contentType": content_type, "data": base64.b64encode(content).decode("ascii")}


def document_reference(patient_ref: str, binary_ref: str, patient_n: int, n: int, size: int,
                       content_type: str = "text/plain") -> dict[str, Any]:
    type_code, type_display = document_type(patient_n + n)
    classes = codes()["document_classes"]
    class_code, class_display = classes["codes"][n % len(classes["codes"])]
    day = _day(patient_n, n)
    return {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:1.2.250.1.999.2.{patient_n}.{n}"},
        "status": "current",
        "type": _coding(codes()["document_types"]["system"], type_code, type_display),
        "category": [_coding(classes["system"], class_code, class_display)],
        "subject": {"reference": patient_ref},
        "date": f"{day.isoformat()}T{n % 24:02d}:15:00+01:00",
        "description": f"{type_display} {n}",
        "content": [{"attachment": {"contentType": content_type, "url": binary_ref, "size": size,
                                    "creation": day.isoformat()}}],
    }


def appointment(patient_ref: str, n: int) -> dict[str, Any]:
    start = _day(n, 99)
    service = codes()["appointment_service_type"]
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "serviceType": [_coding(service["system"], service["code"])],
        "start": f"{start.isoformat()}T09:00:00+01:00",
        "end": f"{start.isoformat()}T09:30:00+01:00",
        "participant": [{"actor": {"reference": patient_ref}, "status": "accepted"}],
    }


def communication(patient_ref: str, n: int) -> dict[str, Any]:
    categories = codes()["communication_categories"]
    code, display = categories["codes"][n % len(categories["codes"])]
    return {
        "resourceType": "Communication",
        "status": "completed",
        "category": [_coding(categories["system"], code, display)],
        "subject": {"reference": patient_ref},
        "sent": f"{_day(n, 7).isoformat()}T10:00:00+01:00",
        "payload": [{"contentString": f"Message {n}"}],
    }


def consent(patient_ref: str, n: int) -> dict[str, Any]:
    scope, category = codes()["consent_scope"], codes()["consent_category"]
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": _coding(scope["system"], scope["code"]),
        "category": [_coding(category["system"], category["code"])],
        "patient": {"reference": patient_ref},
        "dateTime": f"{_day(n, 3).isoformat()}T08:00:00+01:00",
    }


def observation(patient_ref: str, patient_n: int, n: int) -> dict[str, Any]:
    """The patient's n-th measurement: a vital sign or a lab result (LOINC, UCUM) on a day of the ten years."""
    kinds = codes()["observations"]
    code, display, category, unit, low, high = kinds["codes"][n % len(kinds["codes"])]
    # A value inside the usual range, varying with the patient and the measurement.
    value = round(low + (high - low) * ((patient_n * 31 + n * 17) % 100) / 100, 1)
    day = _day(patient_n, 1000 + n)
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [_coding(kinds["category_system"], category)],
        "code": _coding(kinds["system"], code, display),
        "subject": {"reference": patient_ref},
        "effectiveDateTime": f"{day.isoformat()}T{8 + n % 10:02d}:30:00+01:00",
        "valueQuantity": {"value": value, "unit": unit, "system": kinds["unit_system"], "code": unit},
    }


def _post(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def patient_entries(n: int, binary_bytes: int) -> list[dict[str, Any]]:
    """One patient and everything attached to it: 1 + 2 x DOCUMENTS_PER_PATIENT + 3 entries."""
    patient_url = f"urn:uuid:{_uuid('patient', n)}"
    entries = [_post(patient_url, patient(n))]
    for d in range(DOCUMENTS_PER_PATIENT):
        binary_url = f"urn:uuid:{_uuid('binary', n, d)}"
        content = (f"Document {d} du patient {n}. ".encode() * (binary_bytes // 24 + 1))[:binary_bytes]
        entries.append(_post(binary_url, binary(content, "text/plain")))
        entries.append(_post(f"urn:uuid:{_uuid('doc', n, d)}",
                             document_reference(patient_url, binary_url, n, d, len(content))))
    entries += [_post(f"urn:uuid:{_uuid(kind, n)}", make(patient_url, n))
                for kind, make in (("appointment", appointment), ("communication", communication), ("consent", consent))]
    return entries


@dataclass(frozen=True)
class Plan:
    """Which patient numbers a scale needs: `scale` documents over `scale / 10` patients."""

    first_patient: int
    patients: int

    @classmethod
    def for_scale(cls, documents: int, already_loaded: int = 0) -> Plan:
        have = already_loaded // DOCUMENTS_PER_PATIENT
        return cls(have, max(documents // DOCUMENTS_PER_PATIENT - have, 0))


def bundles(plan: Plan, entries_per_bundle: int = 100, binary_bytes: int = 512) -> Iterator[dict[str, Any]]:
    """Transaction bundles of about `entries_per_bundle` entries, whole patients per bundle."""
    per_patient = 1 + 2 * DOCUMENTS_PER_PATIENT + 3
    patients_per_bundle = max(entries_per_bundle // per_patient, 1)
    last = plan.first_patient + plan.patients
    for start in range(plan.first_patient, last, patients_per_bundle):
        entries = [e for n in range(start, min(start + patients_per_bundle, last)) for e in patient_entries(n, binary_bytes)]
        yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def parse_scale(text: str) -> int:
    """`10k`, `100k`, `1m` or a plain number of documents."""
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor > 1 else text
    return int(float(number) * factor)
