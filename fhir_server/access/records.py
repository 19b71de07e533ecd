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
from functools import cache
from typing import TYPE_CHECKING, Any

from fhir_server.access.participants import stored_names
from fhir_server.definitions.compartment import patient_compartment_params
from fhir_server.security.callers import IDNATPS_SYSTEM, Caller
from fhir_server.storage.database import HISTORY
from fhir_server.timefmt import now_instant

if TYPE_CHECKING:
    from fhir_server.storage.documents import Stored
    from fhir_server.storage.repository import Reader, Repository, Session

# The record's lifecycle on its Patient (docs/ACCESS-RULES.md, "Representation"): one place for the URLs.
STATUS_EXTENSION = "https://fhir-server.example.org/StructureDefinition/record-status"
CLOSED_EXTENSION = "https://fhir-server.example.org/StructureDefinition/record-closed"
DELETION_EXTENSION = "https://fhir-server.example.org/StructureDefinition/record-deletion-requested"
# When the enrolment notice was queued (a valueDateTime with its time zone): written by
# `fhir-server enrol` (fhir_server.record.enrolment), the day the six weeks to object start.
NOTICE_EXTENSION = "https://fhir-server.example.org/StructureDefinition/record-notice-sent"
# `purged`: a closed record emptied at the end of its archive or on a deletion request (R.1111-36);
# only its Patient stub is left (docs/DECISIONS.md, "Record lifecycle").
STATUSES = ("pending", "active", "closed", "opposed", "purged")
CONSENT_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")
CONSENT_CATEGORY = ("http://loinc.org", "59284-0")
# v3-ActReason ETREAT, emergency treatment: a deny Consent with this purpose opposes emergency access.
EMERGENCY = ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "ETREAT")
# v3-RoleCode relationships that make a RelatedPerson a legal representative (parent or guardian).
REPRESENTATIVE_ROLES = frozenset({"PRN", "MTH", "FTH", "PRNFOST", "STPPRN", "GUARD", "NPRN"})
INS_SYSTEMS = ("urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.10")


# Set on every current and past version of a record no professional may open (closed, opposed),
# so searches across records leave it out with an equality (`access.rules._organisation`).
SHUT = "shut"
SHUT_STATUSES = ("closed", "opposed", "purged")


@cache
def record_types() -> frozenset[str]:
    """The types whose resources can belong to a record: the Patient compartment, and Binary."""
    return frozenset({*patient_compartment_params(), "Patient", "Binary"})


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
    # Whether professionals are named by IdNatPs (`idnatps:`) in it, each Practitioner reference
    # resolved when the rules were written: then a token's IdNatPs is all it takes to find them.
    resolved: bool = False


# Where a Patient's current document keeps its record's rules (beside `acc`, which holds what every
# version carries), kept in step by `refresh_rules`.
RULES_KEY = "rules"


async def refresh_rules(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
    """After a Patient or Consent write (or deletion): the record's rules summarised on the
    Patient's current document, so opening a record is one lookup (docs/PERFORMANCE.md)."""
    patient_id = stored.id if stored.resource_type == "Patient" else stored.patient
    if not patient_id:
        return
    # The collections are read and changed directly: the transaction's deferred writes go first.
    await repository.settle(session)
    patients = repository.collection("Patient")
    if stored.resource_type == "Patient":
        # The version just written is the current one: no need to read it back.
        found: dict[str, Any] | None = {"res": stored.resource, "del": stored.deleted}
    else:
        # A Patient's `pat` is its own id: naming it routes to the record's shard (policies/sharding.json).
        found = await patients.find_one({"_id": patient_id, "pat": patient_id}, {"res": 1, "del": 1}, session=session)
    if found is None or found.get("del"):
        return
    consents = await repository.collection("Consent").find({"pat": patient_id, "del": False}, {"res": 1},
                                                              session=session).to_list(None)
    rules = _summary(found.get("res") or {}, [d.get("res") or {} for d in consents])
    references = {k for name in ("permit", "deny") for k, _, _ in rules[name]} | set(rules["doctors"])
    named = await _idnatps_of(repository, session, sorted(k for k in references if k.startswith("Practitioner/")))
    for name in ("permit", "deny"):
        rules[name] += [[named[k], start, end] for k, start, end in rules[name] if k in named]
    rules["doctors"] += [named[k] for k in rules["doctors"] if k in named]
    shut = rules["status"] in SHUT_STATUSES
    # Imported here: the lifecycle builds on this module (its URLs, the status), and what it
    # schedules rides in this one update rather than a second one per Patient written.
    from fhir_server.record.lifecycle import scheduled
    await patients.update_one({"_id": patient_id, "pat": patient_id},
                              {"$set": {RULES_KEY: rules, SHUT: shut, **scheduled(found.get("res"))}}, session=session)
    if stored.resource_type == "Patient" and shut != await _was_shut(repository, session, stored):
        await _mark_shut(repository, session, patient_id, shut)


async def _was_shut(repository: Repository, session: Session, stored: Stored) -> bool:
    """Whether the Patient's previous version closed (or opposed) its record."""
    if stored.version == 1:
        return False
    previous = await repository.database.collection(HISTORY).find_one(
        {"pat": stored.id, "rid": f"Patient/{stored.id}", "vid": stored.version - 1}, {"res": 1}, session=session)
    return record_status((previous or {}).get("res")) in SHUT_STATUSES


async def _mark_shut(repository: Repository, session: Session, patient_id: str, shut: bool) -> None:
    """A record closing (or reopening) marks (or unmarks) everything in it, once, in the same transaction."""
    for rtype in sorted(record_types() - {"Patient"}):
        await repository.collection(rtype).update_many({"pat": patient_id}, {"$set": {SHUT: shut}}, session=session)
    await repository.database.collection(HISTORY).update_many({"pat": patient_id}, {"$set": {SHUT: shut}},
                                                              session=session)


async def _idnatps_of(repository: Repository, session: Session, references: list[str]) -> dict[str, str]:
    """`idnatps:{IdNatPs}` of each `Practitioner/{id}` carrying one (`participants.stored_names`)."""
    if not references:
        return {}
    named = await stored_names(repository, session, references)
    return {r: f"idnatps:{k.split(':', 1)[1]}" for r, k in named.stored.items() if k.startswith("ps:")}


def _summary(patient: dict[str, Any], consents: list[dict[str, Any]]) -> dict[str, Any]:
    """The active privacy Consents and the Patient's choices; periods are kept, and judged when read."""
    rules: dict[str, Any] = {"permit": [], "deny": [], "emergency": [], "doctors": [],
                             "status": record_status(patient),
                             "ids": sorted({f"{i.get('system')}|{i.get('value')}" for i in patient.get("identifier") or []
                                            if isinstance(i, dict)})}
    for consent in consents:
        if consent.get("status") != "active" or not is_privacy_consent(consent):
            continue
        provision = consent.get("provision") or {}
        period = provision.get("period") or {}
        start, end = period.get("start"), period.get("end")
        actors = sorted({k for a in provision.get("actor") or [] if isinstance(a, dict)
                         for k in [actor_key(a.get("reference"))] if k})
        # provision.purpose is a list of Coding, not of CodeableConcept.
        purposes = {(c.get("system") or "", c.get("code") or "") for c in provision.get("purpose") or []
                    if isinstance(c, dict)}
        if provision.get("type") == "deny" and not actors and EMERGENCY in purposes:
            rules["emergency"].append([start, end])
        elif provision.get("type") in ("permit", "deny"):
            rules[provision["type"]] += [[k, start, end] for k in actors]
    rules["doctors"] = sorted({k for r in patient.get("generalPractitioner") or [] for k in [actor_key(r)] if k})
    return rules


def _in_period(start: Any, end: Any, today: str) -> bool:
    return not (isinstance(start, str) and start[:10] > today) and not (isinstance(end, str) and end[:10] < today)


async def load_status(reader: Reader, patient_id: str) -> str:
    """The record's status alone: the same one lookup of the Patient as `load`, without reading the
    Consents of a record whose Patient is not stored (whose status is then `active`)."""
    patient = await _patient_document(reader, patient_id)
    if patient is None:
        return record_status(None)
    rules = patient.get(RULES_KEY)
    return str(rules["status"]) if rules is not None else record_status(patient.get("res"))


async def _patient_document(reader: Reader, patient_id: str) -> dict[str, Any] | None:
    """The record's Patient document (resource and rules summary), or None: read once per
    transaction (fhir_server.storage.known), however many of its resources the transaction writes."""
    known = reader.repository.known.of(reader.session)
    if known is not None and patient_id in known.records:
        return known.records[patient_id]
    own = reader.repository.reader(None, reader.session)
    found = await own.find("Patient", {"_id": patient_id, "pat": patient_id, "del": False}, {"res": 1, RULES_KEY: 1},
                           limit=1)
    patient = found[0] if found else None
    if known is not None:
        known.records[patient_id] = patient
    return patient


async def load(reader: Reader, patient_id: str) -> Record:
    """The record's facts, whoever may see them: the server deciding, not a caller reading. One
    lookup of the Patient's document, whose `rules` summarise them; without it (a record
    whose Patient is not stored), its Consents are read."""
    own = reader.repository.reader(None, reader.session)
    patient = await _patient_document(reader, patient_id)
    rules = (patient or {}).get(RULES_KEY)
    resolved = rules is not None
    if rules is None:
        consents = await own.find("Consent", {"pat": patient_id, "del": False}, {"res": 1})
        rules = _summary((patient or {}).get("res") or {}, [d.get("res") or {} for d in consents])
    today = now_instant()[:10]
    return Record(
        patient_id, patient is not None, rules["status"],
        frozenset(k for k, start, end in rules["permit"] if _in_period(start, end, today)),
        frozenset(k for k, start, end in rules["deny"] if _in_period(start, end, today)),
        frozenset(rules["doctors"]),
        any(_in_period(start, end, today) for start, end in rules["emergency"]),
        frozenset(rules["ids"]), resolved)


def token_keys(caller: Caller) -> frozenset[str]:
    """How a record whose rules are resolved names this professional: by their IdNatPs."""
    return frozenset({f"idnatps:{caller.idnatps}"}) if caller.idnatps else frozenset()


async def professional_keys(reader: Reader, caller: Caller) -> frozenset[str]:
    """How any record may name this professional: their IdNatPs, and each Practitioner carrying it."""
    if not caller.idnatps:
        return frozenset()
    ids = await reader.repository.ids("Practitioner", [("identifier", f"{IDNATPS_SYSTEM}|{caller.idnatps}")],
                                      reader.session, 20)
    return frozenset({f"idnatps:{caller.idnatps}", *(f"Practitioner/{i}" for i in ids)})


async def represents(reader: Reader, caller: Caller, record: Record) -> bool:
    """Whether a patient caller is the record's patient's legal representative."""
    return await representative_link(reader, caller, record.patient_id) is not None


async def representative_link(reader: Reader, caller: Caller, patient_id: str) -> str | None:
    """The id of the RelatedPerson of that patient making a patient caller their legal
    representative: holding the caller's INS, as parent or guardian (../shared/DECISIONS.md)."""
    own = reader.repository.reader(None, reader.session)
    for doc in await own.find("RelatedPerson", {"pat": patient_id, "del": False}, {"res": 1}):
        person = doc.get("res") or {}
        if person.get("active") is False:
            continue
        holds = any(isinstance(i, dict) and i.get("system") in INS_SYSTEMS and i.get("value") == caller.ins
                    for i in person.get("identifier") or [])
        roles = {code for _, code in _codes(person.get("relationship"))}
        if holds and roles & REPRESENTATIVE_ROLES:
            return str(doc["_id"])
    return None


def is_own(record: Record, caller: Caller) -> bool:
    """Whether a patient caller is the record's patient (their INS is on the Patient)."""
    return any(f"{system}|{caller.ins}" in record.identifiers for system in INS_SYSTEMS)


def register_write_rules(repository: Repository) -> None:
    for resource_type in ("Patient", "Consent"):
        repository.write_rules.setdefault(resource_type, []).append(refresh_rules)
