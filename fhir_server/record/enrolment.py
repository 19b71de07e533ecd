"""Enrolment (issue 14): the persons of an insurer's roster become Patients whose record is
`pending`, with the date they were told, and RelatedPersons for a minor's legal representatives.

One batch of persons (fhir_server.record.roster) at a time, the same for `fhir-server enrol` on
the data dir and for `POST [base]/$enrol` of a running server:

1. each person's Patient is looked up by INS (the identifier lookup table: one indexed equality,
   all of the batch's at once);
2. what to write is decided: a new person gets a Patient with status `pending` and the notice date
   (its id derived from the INS with a server secret, so two runs, or a run resumed after a
   crash, never make two Patients of one person); a known person keeps their record's status
   (a re-run never recreates or re-pends an opposed record: `opposed`, `closed` and `purged`
   records are left as they are) and what others wrote on their Patient, and takes the roster's demographics;
   a pending record not yet told gets its notice;
3. the batch is written in one store transaction (`Repository.write_many`), each person with their
   representatives as a group that is written whole or not at all, and with the notice queued
   in the same transaction as the Patient version recording its date (fhir_server.record.notice).

Writes go as the platform, through the same validation, record-keys and record-write hooks as any
write (the record's rules refuse anything for an opposed person). Who may enrol is decided before:
an insurer's system token, an operator or the platform (`POST $enrol`), or whoever can write the
data dir (the command).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_server.access.records import NOTICE_EXTENSION, SHUT_STATUSES, STATUS_EXTENSION, record_status
from fhir_server.errors import FhirError
from fhir_server.record import notice as notices
from fhir_server.record.roster import Person
from fhir_server.security.callers import PLATFORM
from fhir_server.storage.database import MAIL_QUEUE
from fhir_server.storage.documents import Stored, from_current
from fhir_server.storage.repository import Repository, Session, WriteResult
from fhir_server.timefmt import now_instant

# The secret new Patients' and RelatedPersons' ids are derived with.
ID_KEY = "enrolment-ids"
# Lookups in flight at once: the store answers many small reads faster side by side.
LOOKUPS = 32
# Records the roster leaves alone whatever it says (DECISIONS, "Record lifecycle"): a purged record's
# stub must not take back the names and addresses its purge removed.
LEFT_ALONE = SHUT_STATUSES
RESULTS = ("created", "updated", "unchanged", "kept", "rejected")


@dataclass
class Outcome:
    """What became of one person: created, updated, unchanged, kept (an opposed, closed or purged record,
    left as it is) or rejected (with why); `notice` is `email` or `postal` when one was queued."""
    line: int
    result: str
    reason: str = ""
    notice: str | None = None
    patient_id: str | None = None


@dataclass
class _Plan:
    person: Person
    patient_id: str
    resources: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    notice: notices.Notice | None = None
    # The notice as the mail queue or the postal export holds it.
    mail: dict[str, Any] | None = None
    postal: dict[str, Any] | None = None


@dataclass
class Prepared:
    """A batch ready to write: what each person's outcome already is (rejected, kept), and the plans."""
    stamp: str
    outcomes: list[Outcome | None]
    plans: list[tuple[int, _Plan]]


def _extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in resource.get("extension") or [] if isinstance(e, dict) and e.get("url") == url), None)


def _merged_identifiers(roster: list[Any], current: list[Any]) -> list[Any]:
    seen = {(i.get("system"), i.get("value")) for i in roster if isinstance(i, dict)}
    return [*roster, *(i for i in current if not isinstance(i, dict) or (i.get("system"), i.get("value")) not in seen)]


class Enrolment:
    def __init__(self, repository: Repository, secret: bytes, sender: str) -> None:
        self.repository = repository
        self.secret = secret
        self.sender = sender

    def _id(self, *parts: str) -> str:
        digest = hmac.new(self.secret, "|".join(parts).encode(), hashlib.sha256).digest()
        return str(uuid.UUID(bytes=digest[:16]))

    async def enrol(self, persons: Sequence[Person]) -> list[Outcome]:
        """Write one batch; one outcome per person, in order. Persons of one batch have distinct INS."""
        return await self.write(await self.prepare(persons))

    async def prepare(self, persons: Sequence[Person]) -> Prepared:
        """Steps 1 and 2, reading only: while one batch is written, the next can be prepared (none
        of its persons in the batch being written)."""
        found = await self._find(persons)
        stamp = now_instant()
        batch = notices.new_batch()
        prepared = Prepared(stamp, [None] * len(persons), [])
        for index, (person, current) in enumerate(zip(persons, found, strict=True)):
            try:
                plan = self._plan(person, current, stamp)
            except FhirError as exc:
                prepared.outcomes[index] = Outcome(person.line, "rejected", _reason(exc))
                continue
            if plan is None:
                assert isinstance(current, Stored)
                prepared.outcomes[index] = Outcome(person.line, "kept", f"record {record_status(current.resource)}",
                                                   patient_id=current.id)
                continue
            if plan.notice is not None:
                # Written out here, not in the transaction: its writer lock is held for store work only.
                if plan.notice.channel == "email":
                    plan.mail = plan.notice.mail_job(stamp, self.sender)
                else:
                    plan.postal = plan.notice.postal_row(stamp, batch)
            prepared.plans.append((index, plan))
        return prepared

    async def write(self, prepared: Prepared) -> list[Outcome]:
        """Step 3: the batch in one transaction, the notices with the Patients recording them."""
        plans, outcomes = prepared.plans, prepared.outcomes
        items = [(rid, resource) for _, plan in plans for rid, resource in plan.resources]
        groups = [group for group, (_, plan) in enumerate(plans) for _ in plan.resources]
        # Where each group's Patient is among the items (it comes first in its group).
        firsts = [0] if plans else []
        for group in range(1, len(plans)):
            firsts.append(firsts[-1] + len(plans[group - 1][1].resources))

        async def queue_notices(session: Session, results: dict[int, WriteResult | FhirError]) -> None:
            told = [plan for group, (_, plan) in enumerate(plans)
                    if isinstance(written := results.get(firsts[group]), WriteResult) and written.changed]
            jobs = [plan.mail for plan in told if plan.mail is not None]
            rows = [plan.postal for plan in told if plan.postal is not None]
            assert session is not None
            if jobs:
                self.repository.database.pending.insert(session, MAIL_QUEUE, jobs)
            if rows:
                self.repository.database.pending.insert(session, notices.POSTAL_NOTICES, rows)

        results = await self.repository.write_many(PLATFORM, items, groups=groups, within=queue_notices) \
            if items else []
        position = 0
        for index, plan in plans:
            mine = results[position:position + len(plan.resources)]
            position += len(plan.resources)
            outcomes[index] = _outcome(plan, mine)
        return [o for o in outcomes if o is not None]

    async def _find(self, persons: Sequence[Person]) -> list[Stored | FhirError | None]:
        """Each person's current Patient, by INS; a FhirError when several hold it."""
        limit = asyncio.Semaphore(LOOKUPS)
        reader = self.repository.reader(None)
        patients = self.repository.collection("Patient")
        gate = self.repository.database.gate

        async def one(person: Person) -> Stored | FhirError | None:
            async with limit:
                ids = {i for i, _ in await reader.lookup_ids("Patient", "identifier", ["|".join(person.ins)])}
                if len(ids) > 1:
                    # Identity has forked already: an operator settles it, enrolment does not pick one.
                    return FhirError(409, "multiple-matches", f"INS {person.ins[1]} is held by {len(ids)} Patients")
                if not ids:
                    return None
                patient_id = ids.pop()
                async with gate.read():
                    doc = await patients.find_one({"_id": patient_id, "pat": patient_id}, {"ix": 0, "sk": 0})
                return None if doc is None else from_current("Patient", doc)

        return list(await asyncio.gather(*(one(p) for p in persons)))

    def _plan(self, person: Person, current: Stored | FhirError | None, stamp: str) -> _Plan | None:
        """What to write for a person (None: their record is left alone); FhirError: rejected."""
        if isinstance(current, FhirError):
            raise current
        if current is not None and current.deleted:
            current = None
        if current is not None and record_status(current.resource) in LEFT_ALONE:
            return None
        patient_id = current.id if current is not None else self._id("Patient", *person.ins)
        if current is None:
            patient = {**person.patient, "extension": [{"url": STATUS_EXTENSION, "valueCode": "pending"}]}
        else:
            before = current.resource or {}
            patient = {k: v for k, v in before.items() if k not in ("id", "meta")}
            patient.update({k: v for k, v in person.patient.items() if k != "identifier"})
            patient["identifier"] = _merged_identifiers(person.patient["identifier"], before.get("identifier") or [])
        patient["id"] = patient_id
        representatives = []
        for line, ins, kept in person.representatives:
            related = {"resourceType": "RelatedPerson", "id": self._id("RelatedPerson", patient_id, *ins),
                       "patient": {"reference": f"Patient/{patient_id}"}, "active": True, **kept}
            representatives.append((line, related))
        plan = _Plan(person, patient_id)
        told = _extension(patient, NOTICE_EXTENSION) is not None
        if record_status(patient) == "pending" and not told:
            plan.notice = self._notice(person, patient_id, patient, [r for _, r in representatives])
            patient["extension"] = [*(patient.get("extension") or []), {"url": NOTICE_EXTENSION, "valueDateTime": stamp}]
        for line, resource in [(person.line, patient), *representatives]:
            try:
                checked = self.repository.prepare(PLATFORM, resource)
            except FhirError as exc:
                where = "" if line == person.line else f"line {line} (a legal representative): "
                raise FhirError(exc.status, exc.issues[0].code, where + _reason(exc)) from None
            plan.resources.append((resource["id"], checked))
        return plan

    @staticmethod
    def _notice(person: Person, patient_id: str, patient: dict[str, Any],
                representatives: list[dict[str, Any]]) -> notices.Notice:
        recipients = list(dict.fromkeys([*notices.emails(patient), *(e for r in representatives
                                                                      for e in notices.emails(r))]))
        address = notices.postal_address(patient) or next(
            (a for r in representatives if (a := notices.postal_address(r)) is not None), None)
        if not recipients and address is None:
            raise FhirError(422, "required", "no e-mail and no postal address: the notice cannot be sent")
        name = notices.full_name(patient)
        recipient = f"Aux représentants légaux de {name}" if representatives else name
        return notices.Notice(patient_id, person.ins[1], name, tuple(recipients), address, recipient)


def _reason(error: FhirError) -> str:
    return error.diagnostics


def _outcome(plan: _Plan, results: list[WriteResult | FhirError]) -> Outcome:
    line = plan.person.line
    refused = next((r for r in results if isinstance(r, FhirError)), None)
    if refused is not None:
        return Outcome(line, "rejected", _reason(refused))
    written = [r for r in results if isinstance(r, WriteResult)]
    notice = plan.notice.channel if plan.notice is not None and written[0].changed else None
    if written[0].created:
        return Outcome(line, "created", notice=notice, patient_id=plan.patient_id)
    if any(r.changed for r in written):
        return Outcome(line, "updated", notice=notice, patient_id=plan.patient_id)
    return Outcome(line, "unchanged", patient_id=plan.patient_id)
