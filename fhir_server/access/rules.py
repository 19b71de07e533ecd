"""The shared record's access rules (issue 12; docs/ACCESS-RULES.md), on the one access path.

- record open: per interaction, the records it names are decided once each (`records.load`); a
  record the caller may not open answers 403, the only 403 of these rules; otherwise the decision
  is a mode, compiled into conditions on the keys every version carries (`record_keys`), so what
  is hidden is never matched, counted, included, chained through or listed in history, and reads
  as 404 like what never existed.
- record write: deposits go to pending and active records only; only the patient (or their legal
  representative) manages the record's rules, except a professional recording the patient's
  authorisation of themself (../shared/DECISIONS.md, "Access rules").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fhir_server.access import habilitations, participants, record_keys
from fhir_server.access.records import (
    Record,
    actor_key,
    is_own,
    is_privacy_consent,
    load,
    load_status,
    professional_keys,
    record_status,
    represents,
    token_keys,
)
from fhir_server.access.records import SHUT, SHUT_STATUSES, record_types
from fhir_server.agenda.reminders import patient_dismisses
from fhir_server.errors import FhirError
from fhir_server.messaging import policy as messaging
from fhir_server.security.callers import IDNATPS_SYSTEM, Caller
from fhir_server.storage import outbox
from fhir_server.storage.hooks import Hooks, RecordWriteCheck, ScopeFilter
from fhir_server.timefmt import instant, now_instant

if TYPE_CHECKING:
    from fhir_server.storage.repository import Reader

# Matches no stored document: every stored `pat` is a FHIR id, never empty.
NOWHERE = ""

NOT_AUTHORISED = ("The patient's authorisation is missing: the patient has not authorised you to access their "
                  "record (Code de la santé publique L.1111-15)")
# Where the patient states their choices: their Patient (status, médecin traitant) and Consents.
PATIENT_CHOICES = ("Patient", "Consent")
PURGED = "This shared record was deleted: it holds nothing"
# Which professionals' authorisations a cross-record search looks through, at most.
MAX_RECORDS = 1000


def unrestricted(caller: Caller) -> bool:
    """The platform itself, and a system client of no organisation and no role whose token this
    server signed (a local tool), read everything: audited as such (docs/ACCESS-RULES.md). A client with a
    role (the insurer) is a depositor like a hospital."""
    return caller.kind == "platform" or (caller.kind == "system" and caller.own_key and not caller.organization
                                         and not caller.role)


@dataclass(frozen=True)
class Mode:
    """What a caller sees in the records opened: `pat` in `patients` and these key conditions;
    `demographics` whether the Patient itself is seen whatever the other conditions say (for a
    depositor who is not authorised, in a record they name).

    `participant` (a professional's or establishment's keys, `participants.caller_keys`) applies the
    participant rule: the types of policies/participants.json are seen where their `par` key names
    the caller, instead of `conditions`; a Binary (or a history across types) must also not follow
    one the caller takes no part in. `participant_only`: nothing else of the record is seen (a
    professional not authorised who takes part in something of it). `across`: a search naming no
    record, where the participant types are looked for in every record open to professionals but
    those in `blocked` (whose patient blocked the caller)."""
    patients: tuple[str, ...]
    conditions: tuple[tuple[str, Any], ...] = ()
    demographics: bool = False
    participant: tuple[str, ...] = ()
    participant_only: bool = False
    across: bool = False
    blocked: tuple[str, ...] = ()

    def filter(self) -> ScopeFilter:
        patients = self.patients
        where: dict[str, Any] = {"pat": patients[0]} if len(patients) == 1 else {"pat": {"$in": list(patients)}}
        keyed = {**where, **dict(self.conditions)}
        taking_part = _any_of(list(self.participant))
        elsewhere = _any_of([None, *self.participant])

        def condition(resource_type: str | None) -> dict[str, Any] | None:
            if resource_type is not None and resource_type not in record_types():
                return None
            if resource_type == "Patient" and self.demographics:
                return where
            if not self.participant:
                return keyed
            if resource_type in participants.types():
                return self._participating(taking_part)
            if self.participant_only:
                return {**where, "acc.par": taking_part} if resource_type in (None, "Binary") else {"pat": NOWHERE}
            if resource_type in (None, "Binary"):
                return {**keyed, "acc.par": elsewhere}
            return keyed
        return condition

    def _participating(self, taking_part: Any) -> dict[str, Any]:
        if not self.across:
            where: dict[str, Any] = {"pat": self.patients[0]} if len(self.patients) == 1 \
                else {"pat": {"$in": list(self.patients)}}
            return {**where, "acc.par": taking_part}
        across: dict[str, Any] = {"acc.par": taking_part, SHUT: {"$ne": True}}
        if self.blocked:
            across["pat"] = {"$nin": list(self.blocked)}
        return across


def _any_of(values: list[Any]) -> Any:
    """The condition on an array key holding one of `values` (`None`: a version without the key)."""
    return values[0] if len(values) == 1 else {"$in": values}


def _professional_conditions(caller: Caller, *, masked: bool) -> tuple[tuple[str, Any], ...]:
    own = [record_keys.depositor(caller)]
    if caller.organization:
        own.append(f"org:{caller.organization}")
    seen = habilitations.profession_classes(caller.profession)
    hidden = habilitations.hidden_classes(caller.profession)
    conditions: list[tuple[str, Any]] = []
    # Whichever list is shorter: the same set of classes, a cheaper test for the store.
    if len(hidden) < len(seen):
        if hidden:
            conditions.append(("acc.hab", {"$nin": list(hidden)}))
    else:
        conditions.append(("acc.hab", {"$in": list(seen)}))
    if not masked:
        conditions.append(("acc.vis", {"$in": [record_keys.VISIBLE, *own]}))
    return tuple(conditions)


def _refuse(message: str) -> FhirError:
    return FhirError(403, "forbidden", message)


async def _emergency(reader: Reader, caller: Caller, record: Record) -> None:
    """Emergency access is recorded in the outbox, so the patient and their médecin traitant are
    told (fhir_server.events.notifications); the audit trail flags the access itself."""
    stamp = now_instant()
    event = {"_id": f"{instant(stamp)}|emergency/{record.patient_id}/{caller.id}", "kind": "emergency-access",
             "pat": record.patient_id, "ts": instant(stamp), "doctors": sorted(record.doctors),
             "caller": {"kind": caller.kind, "id": caller.id, "idnatps": caller.idnatps,
                        "organization": caller.organization}}
    repository = reader.repository
    if reader.session is not None:
        outbox.add(repository.database.pending, reader.session, event)
        return

    async def work(session: Any) -> None:
        outbox.add(repository.database.pending, session, event)
    await repository.in_transaction(work)


async def _deposited(reader: Reader, caller: Caller, patient_id: str) -> bool:
    """Whether the caller ever deposited in this record, whatever the type: one look at history."""
    own = reader.repository.reader(None, reader.session)
    found = await own.find_history(None, {"pat": patient_id, "acc.dep": record_keys.depositor(caller)}, limit=1)
    return bool(found)


async def _professional_mode(reader: Reader, caller: Caller, record: Record, me: frozenset[str]) -> Mode:
    if record.status == "opposed":
        raise _refuse("This person opposed the creation of their shared record: it holds nothing")
    if record.status == "closed":
        raise _refuse("This shared record is closed: professionals no longer access it")
    if record.status == "purged":
        raise _refuse(PURGED)
    if me & record.denied:
        raise _refuse(NOT_AUTHORISED)
    me_keys = tuple(participants.caller_keys(caller))
    own_only = Mode((record.patient_id,), (("acc.dep", record_keys.depositor(caller)),), demographics=True,
                    participant=me_keys)
    if record.status == "pending":
        # Deposits before activation are readable by their author alone (../shared/DECISIONS.md).
        return own_only
    doctor = bool(me & record.doctors)
    if doctor or me & record.permitted:
        return Mode((record.patient_id,), _professional_conditions(caller, masked=doctor), participant=me_keys)
    if caller.purpose_of_use == "BTG" and not record.emergency_opposed:
        await _emergency(reader, caller, record)
        return Mode((record.patient_id,), _professional_conditions(caller, masked=False), participant=me_keys)
    if await _deposited(reader, caller, record.patient_id):
        return own_only
    if await _takes_part(reader, me_keys, record.patient_id):
        # The participant rule (../shared/DECISIONS.md): their threads and appointments, and who the patient is.
        return Mode((record.patient_id,), demographics=True, participant=me_keys, participant_only=True)
    raise _refuse(NOT_AUTHORISED)


async def _takes_part(reader: Reader, me_keys: tuple[str, ...], patient_id: str) -> bool:
    """Whether something of a participant type in this record names the caller: one look per type."""
    if not me_keys:
        return False
    own = reader.repository.reader(None, reader.session)
    for resource_type in sorted(participants.types()):
        if await own.find(resource_type, {"pat": patient_id, "del": False, "acc.par": _any_of(list(me_keys))},
                          {"_id": 1}, limit=1):
            return True
    return False


async def _cross_records(reader: Reader, caller: Caller, me: frozenset[str]) -> Mode:
    """A professional's search naming no patient: the records that authorise them, as authorised
    (a médecin traitant's view of masked documents needs the patient named)."""
    repository = reader.repository
    candidates: set[str] = set()
    for key in me:
        if key.startswith("Practitioner/"):
            actor = [("actor", key)]
            doctor = [("general-practitioner", key)]
        else:
            value = key.split(":", 1)[1]
            actor = [("actor:identifier", f"urn:oid:1.2.250.1.71.4.2.1|{value}")]
            doctor = [("general-practitioner:identifier", f"urn:oid:1.2.250.1.71.4.2.1|{value}")]
        for cid in await repository.ids("Consent", actor, reader.session, MAX_RECORDS):
            consent = await repository.current("Consent", cid, reader.session)
            if consent is not None and consent.patient and is_privacy_consent(consent.resource or {}):
                candidates.add(consent.patient)
        candidates.update(await repository.ids("Patient", doctor, reader.session, MAX_RECORDS))
    opened = []
    blocked = []
    doctor_of_all = True
    for patient_id in sorted(candidates)[:MAX_RECORDS]:
        record = await load(reader, patient_id)
        if me & record.denied:
            blocked.append(patient_id)
        elif record.status == "active" and me & (record.permitted | record.doctors):
            opened.append(patient_id)
            doctor_of_all = doctor_of_all and bool(me & record.doctors)
    # One set of conditions serves every record opened: the médecin traitant's view of masked
    # documents only when they are the médecin traitant of each.
    return Mode(tuple(opened) or (NOWHERE,), _professional_conditions(caller, masked=bool(opened) and doctor_of_all),
                participant=tuple(participants.caller_keys(caller)), across=True, blocked=tuple(blocked))


async def _patient_mode(reader: Reader, caller: Caller, patient_id: str | None) -> Mode:
    if patient_id is None:
        return Mode((NOWHERE,))
    record = await load(reader, patient_id)
    if not record.exists:
        return Mode((NOWHERE,))
    if is_own(record, caller):
        if record.status in ("opposed", "purged"):
            # Only what honours the objection (or the deletion) is kept: their Patient, which
            # they may activate again, empty.
            return Mode((patient_id,), (("acc.dep", NOWHERE),), demographics=True)
        return Mode((patient_id,), (("acc.vfp", {"$lte": instant(now_instant())}),))
    if await represents(reader, caller, record):
        if record.status == "opposed":
            raise _refuse("This person opposed the creation of their shared record: it holds nothing")
        if record.status == "purged":
            raise _refuse(PURGED)
        return Mode((patient_id,), (("acc.vfr", {"$lte": instant(now_instant())}),))
    raise _refuse("This token's person is neither the patient nor one of their legal representatives")


async def open_records(caller: Caller, reader: Reader, patients: list[str] | None) -> ScopeFilter | None:
    if unrestricted(caller):
        return None
    if caller.kind == "patient":
        # One record only, whatever the interaction names: another one's resources are not matched.
        try:
            return (await _patient_mode(reader, caller, caller.record_patient)).filter()
        except FhirError:
            if patients is not None:
                raise
            # A search naming no record finds nothing rather than telling who may not open which.
            return Mode((NOWHERE,)).filter()
    if caller.kind == "system":
        return await _organisation(reader, caller, patients)
    if caller.kind != "practitioner":
        # Operators administer the server; they do not read records.
        return Mode((NOWHERE,)).filter()
    if patients is None:
        return (await _cross_records(reader, caller, await professional_keys(reader, caller))).filter()
    if not patients:
        return _record_less(caller)
    modes = []
    for patient_id in dict.fromkeys(patients):
        record = await load(reader, patient_id)
        # A record whose rules name professionals by IdNatPs needs no lookup of who the caller is.
        me = token_keys(caller) if record.resolved else await professional_keys(reader, caller)
        modes.append(await _professional_mode(reader, caller, record, me))
    if len(modes) == 1:
        return modes[0].filter()
    if len({m.conditions for m in modes}) != 1:
        raise FhirError(400, "not-supported", "Your access differs between the patients named: search one record at a time")
    return Mode(tuple(p for m in modes for p in m.patients), modes[0].conditions).filter()


def _record_less(caller: Caller) -> ScopeFilter:
    """What belongs to no record (a Binary with no securityContext, an Observation of no one): the
    depositor's alone."""
    def condition(resource_type: str | None) -> dict[str, Any] | None:
        if resource_type is not None and resource_type not in record_types():
            return None
        return {"pat": None, "acc.dep": record_keys.depositor(caller)}
    return condition


async def _organisation(reader: Reader, caller: Caller, patients: list[str] | None) -> ScopeFilter:
    """A hospital system (or the insurer) reads what its organisation (or client) deposited, in
    records open to professionals: across records, a closed record's resources carry `shut`
    (`records.refresh_rules`), so they are left out without naming the records."""
    for patient_id in patients or []:
        record = await load(reader, patient_id)
        if record.status in SHUT_STATUSES:
            raise _refuse(f"This shared record is {record.status}: it accepts no professional access")
    deposits = (("acc.dep", record_keys.depositor(caller)),)
    taking_part = _any_of(participants.caller_keys(caller) or [NOWHERE])

    def condition(resource_type: str | None) -> dict[str, Any] | None:
        if resource_type is not None and resource_type not in record_types():
            return None
        where: dict[str, Any] = {}
        if patients is not None:
            where["pat"] = patients[0] if len(patients) == 1 else {"$in": list(patients) or [NOWHERE]}
        if resource_type in participants.types():
            # The participant rule: the threads and appointments naming the establishment.
            return {**where, "acc.par": taking_part} if patients is not None \
                else {"acc.par": taking_part, SHUT: {"$ne": True}}
        if resource_type == "Patient" and patients is not None:
            # The Patient of a record it names (to update demographics, as ADT does); across
            # records, only those it deposited, so no system lists the country's patients.
            return where
        if patients is None:
            return {**dict(deposits), SHUT: {"$ne": True}}
        return {**where, **dict(deposits)}
    return condition


# ---------------------------------------------------------------------------------------------- writes
async def check_record(check: RecordWriteCheck) -> None:
    caller = check.caller
    if check.resource_type == "Practitioner":
        _keep_professional_identity(check)
    if check.patient is None:
        return
    if unrestricted(caller):
        # The law binds the platform too: nothing is stored for an opposed person, nothing more
        # deposited in a closed record; the platform may still set the record's own status.
        status = await load_status(check.reader, check.patient)
        if status in SHUT_STATUSES and check.resource_type not in PATIENT_CHOICES:
            raise _refuse(_refusal(status))
        return
    record = await load(check.reader, check.patient)
    if caller.kind == "patient":
        if record.exists and not is_own(record, caller) and not await represents(check.reader, caller, record):
            raise _refuse("This token's person is neither the patient nor one of their legal representatives")
        if record.status in SHUT_STATUSES and check.resource_type not in PATIENT_CHOICES:
            raise _refuse(_refusal(record.status))
        # A prevention reminder the server deposited, the patient may dismiss (fhir_server.agenda).
        # Secure messages have their own rules (fhir_server.messaging.threads): the patient
        # marks a professional's message read.
        if check.resource_type not in PATIENT_CHOICES and check.current is not None \
                and check.current.keys.get("dep") != record_keys.depositor(caller) \
                and not patient_dismisses(check) \
                and not (check.resource_type == "Communication" and messaging.kind(check.current.resource)):
            _only_masking(check)
        return
    if check.resource_type == "Patient" and check.current is not None:
        if check.resource is None:
            raise _refuse("Only the patient or the platform deletes a Patient")
        _keep_patient_choices(check)
    if record.status in SHUT_STATUSES:
        raise _refuse(_refusal(record.status))
    if check.resource_type == "Consent":
        await _professional_consent(check, record)


def _only_masking(check: RecordWriteCheck) -> None:
    """What a professional deposited, the patient may mask or unmask (MASQUE_PS), not rewrite
    (issue 12, rule 9) nor delete (issue 23)."""
    if check.resource is None:
        raise _refuse("A patient may mask or unmask (MASQUE_PS) what someone else deposited in their record, not delete it")
    if check.current is None or check.current.resource is None:
        return

    def unlabelled(resource: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in resource.items() if k not in ("meta", "securityLabel")}
        labels = record_keys.labels(resource) - {record_keys.MASKED}
        return {**kept, "labels": sorted(labels)}
    if unlabelled(check.resource) != unlabelled(check.current.resource):
        raise _refuse("A patient may mask or unmask (MASQUE_PS) what a professional deposited in their record, "
                      "but not change it")


def _keep_professional_identity(check: RecordWriteCheck) -> None:
    """Records name professionals through Practitioners carrying their IdNatPs: changing whose
    IdNatPs an existing Practitioner carries would hand one professional another's access, so only
    the platform and operators do it."""
    if check.current is None or check.caller.kind in ("platform", "admin"):
        return

    def idnatps(resource: dict[str, Any] | None) -> set[str]:
        return {i.get("value") for i in (resource or {}).get("identifier") or []
                if isinstance(i, dict) and i.get("system") == IDNATPS_SYSTEM}
    before = idnatps(check.current.resource)
    if before and (check.resource is None or idnatps(check.resource) != before):
        raise _refuse("Only the platform changes or removes the IdNatPs a Practitioner carries")


def _refusal(status: str) -> str:
    if status == "closed":
        return "This shared record is closed: it refuses deposits"
    if status == "purged":
        return "This shared record was deleted at its holder's request or at the end of its archive: it refuses deposits"
    return "This person opposed the creation of their shared record: it refuses deposits, nothing is stored for them"


def _keep_patient_choices(check: RecordWriteCheck) -> None:
    """The record status and the médecin traitant are the patient's choices."""
    before = check.current.resource if check.current is not None else None
    after = check.resource
    if record_status(before) != record_status(after) \
            or sorted(map(str, (before or {}).get("generalPractitioner") or [])) != \
            sorted(map(str, (after or {}).get("generalPractitioner") or [])):
        raise _refuse("Only the patient sets their record's status and designates their médecin traitant")


async def _professional_consent(check: RecordWriteCheck, record: Record) -> None:
    """A professional may record the patient's authorisation of themself, declaring the patient
    agreed; nothing else of the patient's rules, and never past a block."""
    caller = check.caller
    me = await professional_keys(check.reader, caller) if caller.kind == "practitioner" else frozenset()
    consent = check.resource or {}
    provision = consent.get("provision") or {}
    actors = {actor_key(a.get("reference")) for a in provision.get("actor") or [] if isinstance(a, dict)}
    if check.current is not None or check.resource is None or not me or not is_privacy_consent(consent) \
            or provision.get("type") != "permit" or not actors or not actors <= me:
        raise _refuse("Only the patient manages their access rules; a professional may only record the "
                      "patient's authorisation of themself")
    if me & record.denied:
        raise _refuse("The patient blocked you: nobody can override a block")


def register(hooks: Hooks) -> None:
    # The matrix is read now: a mistyped policies/habilitations.json stops the start, not a request.
    habilitations.hidden_classes(None)
    participants.policy()
    hooks.record_opens.append(open_records)
    hooks.record_keys.append(record_keys.keys)
    hooks.record_writes.append(check_record)
