"""What one record says about access, read once per interaction by a targeted lookup (the Patient
and its privacy Consents; ../shared/DECISIONS.md, "Access rules"), and who a caller is in it.

The representation is in docs/ACCESS-RULES.md: the record status is an extension of the Patient;
authorisations, blocks and the opposition to emergency access are active privacy Consents
(scope patient-privacy, category LOINC 59284-0); the médecin traitant is
`Patient.generalPractitioner`. A professional is named by a reference to a Practitioner carrying
their IdNatPs, or by a logical reference holding the IdNatPs itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhir_server.security.callers import IDNATPS_SYSTEM, Caller
from fhir_server.timefmt import now_instant

if TYPE_CHECKING:
    from fhir_server.storage.repository import Reader

STATUS_EXTENSION = "https://fhir-server.example.org/StructureDefinition/record-status"
STATUSES = ("pending", "active", "closed", "opposed")
CONSENT_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")
CONSENT_CATEGORY = ("http://loinc.org", "59284-0")
# v3-ActReason ETREAT, emergency treatment: a deny Consent with this purpose opposes emergency access.
EMERGENCY = ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "ETREAT")
# v3-RoleCode relationships that make a RelatedPerson a legal representative (parent or guardian).
REPRESENTATIVE_ROLES = frozenset({"PRN", "MTH", "FTH", "PRNFOST", "STPPRN", "GUARD", "NPRN"})
INS_SYSTEMS = ("urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.10")


def record_status(patient: dict[str, Any] | None) -> str:
    for extension in (patient or {}).get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == STATUS_EXTENSION:
            code = extension.get("valueCode")
            return code if code in STATUSES else "active"
    return "active"


def _codes(concepts: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for concept in concepts if isinstance(concepts, list) else [concepts]:
        for coding in (concept or {}).get("coding") or [] if isinstance(concept, dict) else []:
            if isinstance(coding, dict):
                found.add((coding.get("system") or "", coding.get("code") or ""))
    return found


def actor_key(reference: Any) -> str | None:
    """`Practitioner/{id}` or `idnatps:{IdNatPs}` for a Reference naming a professional."""
    if not isinstance(reference, dict):
        return None
    identifier = reference.get("identifier")
    if isinstance(identifier, dict) and identifier.get("system") == IDNATPS_SYSTEM and identifier.get("value"):
        return f"idnatps:{identifier['value']}"
    target = reference.get("reference")
    if isinstance(target, str) and "Practitioner/" in target:
        return "Practitioner/" + target.rsplit("Practitioner/", 1)[1].split("/")[0]
    return None


def is_privacy_consent(consent: dict[str, Any]) -> bool:
    return CONSENT_SCOPE in _codes(consent.get("scope")) and CONSENT_CATEGORY in _codes(consent.get("category"))


def _in_force(consent: dict[str, Any], now: str) -> bool:
    if consent.get("status") != "active" or not is_privacy_consent(consent):
        return False
    period = (consent.get("provision") or {}).get("period") or {}
    start, end = period.get("start"), period.get("end")
    return not (isinstance(start, str) and start[:10] > now[:10]) and not (isinstance(end, str) and end[:10] < now[:10])


@dataclass(frozen=True)
class Record:
    patient_id: str
    exists: bool
    status: str
    permitted: frozenset[str] = field(default_factory=frozenset)
    denied: frozenset[str] = field(default_factory=frozenset)
    doctors: frozenset[str] = field(default_factory=frozenset)
    emergency_opposed: bool = False
    identifiers: frozenset[str] = field(default_factory=frozenset)


async def load(reader: Reader, patient_id: str) -> Record:
    """The record's facts, whoever may see them: the server deciding, not a caller reading."""
    own = reader.repository.reader(None, reader.session)
    found = await own.find("Patient", {"_id": patient_id, "del": False}, {"res": 1}, limit=1)
    patient = found[0].get("res") if found else None
    consents = await own.find("Consent", {"pat": patient_id, "del": False}, {"res": 1})
    now = now_instant()
    permitted: set[str] = set()
    denied: set[str] = set()
    emergency_opposed = False
    for doc in consents:
        consent = doc.get("res") or {}
        if not _in_force(consent, now):
            continue
        provision = consent.get("provision") or {}
        actors = {k for a in provision.get("actor") or [] if isinstance(a, dict)
                  for k in [actor_key(a.get("reference"))] if k}
        # provision.purpose is a list of Coding, not of CodeableConcept.
        purposes = {(c.get("system") or "", c.get("code") or "") for c in provision.get("purpose") or []
                    if isinstance(c, dict)}
        if provision.get("type") == "deny" and not actors and EMERGENCY in purposes:
            emergency_opposed = True
        elif provision.get("type") == "permit":
            permitted |= actors
        elif provision.get("type") == "deny":
            denied |= actors
    doctors = {k for r in (patient or {}).get("generalPractitioner") or [] for k in [actor_key(r)] if k}
    identifiers = {f"{i.get('system')}|{i.get('value')}" for i in (patient or {}).get("identifier") or []
                   if isinstance(i, dict)}
    return Record(patient_id, patient is not None, record_status(patient), frozenset(permitted), frozenset(denied),
                  frozenset(doctors), emergency_opposed, frozenset(identifiers))


async def professional_keys(reader: Reader, caller: Caller) -> frozenset[str]:
    """How records may name this professional: their IdNatPs, and each Practitioner carrying it."""
    if not caller.idnatps:
        return frozenset()
    ids = await reader.repository.ids("Practitioner", [("identifier", f"{IDNATPS_SYSTEM}|{caller.idnatps}")],
                                      reader.session, 20)
    return frozenset({f"idnatps:{caller.idnatps}", *(f"Practitioner/{i}" for i in ids)})


async def represents(reader: Reader, caller: Caller, record: Record) -> bool:
    """Whether a patient caller is the record's patient's legal representative: a RelatedPerson of
    that patient holding the caller's INS, as parent or guardian (../shared/DECISIONS.md)."""
    own = reader.repository.reader(None, reader.session)
    for doc in await own.find("RelatedPerson", {"pat": record.patient_id, "del": False}, {"res": 1}):
        person = doc.get("res") or {}
        if person.get("active") is False:
            continue
        holds = any(isinstance(i, dict) and i.get("system") in INS_SYSTEMS and i.get("value") == caller.ins
                    for i in person.get("identifier") or [])
        roles = {code for _, code in _codes(person.get("relationship"))}
        if holds and roles & REPRESENTATIVE_ROLES:
            return True
    return False


def is_own(record: Record, caller: Caller) -> bool:
    """Whether a patient caller is the record's patient (their INS is on the Patient)."""
    return any(f"{system}|{caller.ins}" in record.identifiers for system in INS_SYSTEMS)
