"""Telling people by e-mail what happened in a record (issue 13): a new document the patient may
read, an emergency access (to the patient and their médecin traitant).

- The after-commit hook (`Notifications.committed`, registered in app.py) only decides and
  queues: it reads the store and writes durable messages to the mail queue, and never talks to
  the SMTP server, so an SMTP server that is down never holds up the outbox dispatcher.
- A worker, one process at a time (a lease in the store, like the dispatcher's), sends what is
  due, with retries, and looks for the documents whose INVISIBLE_PATIENT month ended since it last
  looked (`acc.vfp` passed; its mark is kept in the store, so a restart neither skips nor repeats).
- A secure message to the patient (issue 15): who wrote and when, never what.
- Recipients: the patient's e-mail (Patient.telecom), and for a minor the legal representatives'
  (RelatedPerson.telecom, parents and guardians; not for documents invisible to them); a
  médecin traitant's from Practitioner.telecom. No address: nothing sent, logged once.

Messages come from mappings/notifications/ and say what happened, never what a document holds
beyond its type and date.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


from fhir_server.access.record_keys import INVISIBLE_PATIENT, labels
from fhir_server.access.records import REPRESENTATIVE_ROLES
from fhir_server.agenda.reminders import PreventionReminders, due_reminders
from fhir_server.config import Settings
from fhir_server.events.mail import MailRefused, MailUnavailable, Transport, check_sender, compose
from fhir_server.events.mail_queue import MailQueue
from fhir_server.messaging import policy as messaging
from fhir_server.security.callers import IDNATPS_SYSTEM
from fhir_server.storage.database import JOB_MARKS
from fhir_server.storage.documents import Stored, from_current, from_history
from fhir_server.storage.leases import Lease, in_rounds, stop_rounds
from fhir_server.storage.repository import Repository
from fhir_server.operations.record_areas import area
from fhir_server.timefmt import instant, now, now_instant, parse_instant

log = logging.getLogger("fhir_server.notifications")
LEASE_ID = "mail"
# Longer than one SMTP exchange should take (mail.TIMEOUT_SECONDS per step): renewed between messages.
LEASE_SECONDS = 30.0
# How often the queue is looked at when no local event woke the worker (messages queued by
# another process, retries coming due).
POLL_SECONDS = 2.0
BATCH = 50
SCAN_MARK = "visibility-scan"
# Advance directives reminded per scan, at most (a scan runs every FHIR_VISIBILITY_SCAN_SECONDS).
MAX_DIRECTIVES = 100_000
ADULT_AGE = 18


# The most values of one `$in` the look-ahead sends: each names a record, and a read naming a few
# records goes to a few shards of a cluster (policies/sharding.json), not to all.
MOST_IN = 20


@dataclass
class _Ahead:
    """What a dispatch round's document events need, read together (`Notifications._look_ahead`)."""
    # The current (not deleted) DocumentReferences found in their events' records, by id.
    documents: dict[str, Stored] = field(default_factory=dict)
    # The patient's message key of each visible document -> whether it is queued or sent.
    told: dict[str, bool] = field(default_factory=dict)
    # The current Patients of the documents whose patient was not told, by id.
    patients: dict[str, Stored] = field(default_factory=dict)


def _document_write(event: dict[str, Any]) -> bool:
    return (event.get("kind") == "write" and str(event.get("rid") or "").startswith("DocumentReference/")
            and event.get("method") != "DELETE")


def _patient_key(document_id: str) -> str:
    return f"document/{document_id}/patient"


def _in_records(ids: list[str], patients: list[str]) -> dict[str, Any]:
    """Resources by id, each looked for in the records named (an `$in` on `_id` is indexed on the
    embedded store; the same clauses under a top-level `$and` are a full scan there)."""
    return {"_id": {"$in": ids}, "pat": {"$in": sorted(set(patients))}}


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[i:i + MOST_IN] for i in range(0, len(values), MOST_IN)]


def _emails(resource: dict[str, Any] | None) -> list[str]:
    found = [t.get("value") for t in (resource or {}).get("telecom") or []
             if isinstance(t, dict) and t.get("system") == "email" and t.get("use") != "old"]
    return list(dict.fromkeys(v.strip() for v in found if isinstance(v, str) and "@" in v))


def _day(value: str | None) -> str:
    """dd/mm/yyyy of a FHIR date or instant."""
    text = (value or "")[:10]
    return f"{text[8:10]}/{text[5:7]}/{text[:4]}" if len(text) == 10 else text


def _moment(stamp: str) -> str:
    """dd/mm/yyyy HH:MM UTC of a stored stamp ("t" + instant)."""
    text = stamp.removeprefix("t")
    return f"{_day(text)} {text[11:16]} UTC"


def _title(document: dict[str, Any]) -> str:
    """The document's type as its depositor named it: its type, else its attachment's title."""
    kind = document.get("type") or {}
    names = [kind.get("text"), *(c.get("display") for c in kind.get("coding") or [] if isinstance(c, dict))]
    attachments = [(c.get("attachment") or {}).get("title") for c in document.get("content") or [] if isinstance(c, dict)]
    return next((n for n in [*names, *attachments] if isinstance(n, str) and n.strip()), "Document")


def _name(resource: dict[str, Any] | None) -> str | None:
    for name in (resource or {}).get("name") or []:
        if isinstance(name, dict):
            parts = [*(g for g in name.get("given") or [] if isinstance(g, str)), name.get("family")]
            text = name.get("text") or " ".join(p for p in parts if isinstance(p, str))
            if text:
                return str(text)
    return None


def _minor(patient: dict[str, Any]) -> bool:
    """Under 18 today; a birth date of a year or a month alone counts from its first day."""
    born = patient.get("birthDate")
    if isinstance(born, str) and len(born) in (4, 7):
        born += "-01-01"[:10 - len(born)]
    try:
        birth = date.fromisoformat(born)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    today = now().date()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day)) < ADULT_AGE


class Notifications:
    def __init__(self, settings: Settings) -> None:
        """Raises MailSettingsInvalid when FHIR_SMTP_URL or FHIR_MAIL_FROM cannot be used."""
        check_sender(settings.mail_from)
        self.transport = Transport(settings.smtp_url, settings.data_dir)
        self.sender = settings.mail_from
        self.scan_seconds = settings.visibility_scan_seconds
        self.reminder_days = settings.directive_reminder_days
        self._repository: Repository | None = None
        self._queue: MailQueue | None = None
        self._lease: Lease | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_scan = 0.0
        self._prevention: PreventionReminders | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, repository: Repository, prevention: PreventionReminders | None = None) -> None:
        self._repository = repository
        self._prevention = prevention
        self._queue = MailQueue(repository.database)
        self._lease = Lease(repository.database, LEASE_ID)
        self._task = asyncio.create_task(self._run(), name="mail-notifications")
        log.info("e-mail notifications go to %s", self.transport.destination)

    async def stop(self) -> None:
        if self._task is None or self._lease is None:
            return
        await stop_rounds(self._task, self._lease, LEASE_SECONDS, log, "mail")

    @property
    def repository(self) -> Repository:
        assert self._repository is not None, "notifications used before the store was opened"
        return self._repository

    @property
    def queue(self) -> MailQueue:
        assert self._queue is not None, "notifications used before the store was opened"
        return self._queue

    # -- the after-commit hook ------------------------------------------------------------------

    async def committed(self, events: list[dict[str, Any]]) -> None:
        """Queue what the events of one dispatch round call for, in their order (a batch hook of the
        dispatcher). The documents they name, whether their patients were told and those patients
        are read together for the round (`_look_ahead`). Store errors raise (the dispatcher delivers
        the round again: queued keys are not queued twice); mail errors cannot happen here."""
        ahead = await self._look_ahead(events)
        for event in events:
            if event.get("kind") == "emergency-access":
                await self._emergency(event)
            elif _document_write(event):
                await self._document_written(event, ahead)
            elif (event.get("kind") == "write" and str(event.get("rid") or "").startswith("Communication/")
                  and int(event.get("vid") or 0) == 1):
                await self._message_sent(event)

    async def _look_ahead(self, events: list[dict[str, Any]]) -> _Ahead:
        """Four reads for a round's document events instead of four for each (issue 18): the
        documents (each in the record its event names, as `_current` reads it), which of their
        patients' messages were sent or are queued (two), and the patients not told yet. What is
        not found here is read alone, as before."""
        ahead = _Ahead()
        named = {(event["rid"].split("/", 1)[1], str(event["pat"])) for event in events
                 if _document_write(event) and event.get("pat")}
        reader = self.repository.reader(None)
        for chunk in _chunks(sorted(named)):
            for doc in await reader.find("DocumentReference", _in_records([i for i, _ in chunk], [p for _, p in chunk])):
                stored = from_current("DocumentReference", doc)
                if not stored.deleted:
                    ahead.documents[stored.id] = stored
        keys = [_patient_key(i) for i, d in ahead.documents.items() if self._visible_now(d)]
        told = await self.queue.known_among(keys) if keys else set()
        ahead.told = {key: key in told for key in keys}
        patients = sorted({d.patient for i, d in ahead.documents.items()
                           if ahead.told.get(_patient_key(i)) is False and d.patient is not None})
        for chunk in _chunks(patients):
            for doc in await reader.find("Patient", _in_records(chunk, chunk)):
                stored = from_current("Patient", doc)
                if not stored.deleted:
                    ahead.patients[stored.id] = stored
        return ahead

    async def _message_sent(self, event: dict[str, Any]) -> None:
        """A secure message to the patient (issue 15): one e-mail to them (and a minor's legal
        representatives), saying who wrote and when, never what."""
        message = await self._current("Communication", event["rid"].split("/", 1)[1], event.get("pat"))
        if message is None or message.patient is None or message.resource is None \
                or messaging.kind(message.resource) != "message":
            return
        patient_ref = f"Patient/{message.patient}"
        if not any(isinstance(r, dict) and r.get("reference") == patient_ref
                   for r in message.resource.get("recipient") or []):
            return
        key = f"message/{message.id}"
        if await self.queue.known(f"{key}/patient"):
            return
        patient = await self._current("Patient", message.patient)
        if patient is None or patient.resource is None:
            return
        sender = (message.resource.get("sender") or {}).get("identifier") or {}
        who = await self._professional(sender.get("value")) if sender.get("system") == IDNATPS_SYSTEM \
            else (message.resource.get("sender") or {}).get("display") or f"FINESS {sender.get('value')}"
        values = {"who": who, "date": _moment(instant(message.last_updated))}
        for person_id, emails in await self._representatives(message.patient, patient.resource):
            await self._tell(f"{key}/representative/{person_id}", "message-received", values, emails,
                             f"RelatedPerson/{person_id}")
        await self._tell(f"{key}/patient", "message-received", values, _emails(patient.resource), patient_ref,
                         unknown=True)

    async def _document_written(self, event: dict[str, Any], ahead: _Ahead) -> None:
        """A document created visible, or whose INVISIBLE_PATIENT label was taken off before its
        month ended. One still invisible is left to the scan, on the day it becomes visible."""
        document_id = event["rid"].split("/", 1)[1]
        document = ahead.documents.get(document_id) or \
            await self._current("DocumentReference", document_id, event.get("pat"))
        if document is None or not self._visible_now(document):
            return
        if int(event.get("vid") or 1) > 1:
            previous = await self._on_record(self.repository.reader(None).find_history, "DocumentReference",
                                             {"rid": event["rid"], "vid": int(event["vid"]) - 1}, document.patient)
            if not previous or INVISIBLE_PATIENT not in labels(from_history(previous[0]).resource or {}):
                return
        await self._document_available(document, ahead)

    @staticmethod
    def _visible_now(document: Stored) -> bool:
        return not document.deleted and document.patient is not None and \
            str(document.keys.get("vfp") or instant("")) <= instant(now_instant())

    async def _document_available(self, document: Stored, ahead: _Ahead | None = None) -> None:
        """`ahead`: what the dispatch round read beforehand (`_look_ahead`), asked again when it
        does not say."""
        assert document.resource is not None and document.patient is not None
        resource = document.resource
        values = {"title": _title(resource), "date": _day(resource.get("date") or document.last_updated)}
        key = f"document/{document.id}"
        told = ahead.told.get(f"{key}/patient") if ahead is not None else None
        if told if told is not None else await self.queue.known(f"{key}/patient"):
            return
        patient = (ahead.patients.get(document.patient) if ahead is not None else None) or \
            await self._current("Patient", document.patient)
        if patient is None or patient.resource is None:
            return
        if str(document.keys.get("vfr") or instant("")) <= instant(now_instant()):
            for person_id, emails in await self._representatives(document.patient, patient.resource):
                await self._tell(f"{key}/representative/{person_id}", "document-available", values, emails,
                                 f"RelatedPerson/{person_id}")
        # The patient's last: once theirs is queued, so is every other (the shortcut above).
        await self._tell(f"{key}/patient", "document-available", values, _emails(patient.resource),
                         f"Patient/{document.patient}", unknown=True)
        if ahead is not None:
            # Another event of the round for this document asks the queue again, as it did alone.
            ahead.told.pop(f"{key}/patient", None)

    async def _emergency(self, event: dict[str, Any]) -> None:
        """One message to each per professional, record and day: an emergency access is many
        interactions, each with its event."""
        caller = event.get("caller") or {}
        patient_id = str(event.get("pat") or "")
        stamp = str(event.get("ts") or instant(now_instant()))
        key = f"emergency/{patient_id}/{caller.get('idnatps') or caller.get('id')}/{stamp[1:11]}"
        if not patient_id or await self.queue.known(f"{key}/patient"):
            return
        patient = await self._current("Patient", patient_id)
        if patient is None or patient.resource is None:
            return
        who = await self._professional(caller.get("idnatps"))
        values = {"who": who, "date": _moment(stamp), "patient": _name(patient.resource) or f"Patient/{patient_id}"}
        for person_id, emails in await self._representatives(patient_id, patient.resource):
            await self._tell(f"{key}/representative/{person_id}", "emergency-access-patient", values, emails,
                             f"RelatedPerson/{person_id}")
        for doctor in event.get("doctors") or []:
            for practitioner in await self._practitioners(str(doctor)):
                await self._tell(f"{key}/doctor/{practitioner.id}", "emergency-access-doctor", values,
                                 _emails(practitioner.resource), f"Practitioner/{practitioner.id}")
        # The patient's last: once theirs is queued, so is every other (the shortcut above), even
        # when this event is delivered again after a crash halfway through.
        await self._tell(f"{key}/patient", "emergency-access-patient", values, _emails(patient.resource),
                         f"Patient/{patient_id}", unknown=True)

    async def _tell(self, key: str, template: str, values: dict[str, str], emails: list[str], whom: str, *,
                    unknown: bool = False) -> None:
        """`unknown`: the caller has just found `key` neither queued nor sent, and only this
        process's dispatcher (it holds the lease) queues: the store need not be asked again."""
        if not emails:
            if unknown or not await self.queue.known(key):
                log.info("%s has no e-mail address: %s not sent", whom, key)
            return
        message = compose(template, values, key=key, sender=self.sender, recipients=emails, moment_utc=now_instant())
        if await self.queue.add(key, message, emails, unknown=unknown):
            self._wake.set()

    # -- reading the record ---------------------------------------------------------------------

    async def _current(self, resource_type: str, resource_id: str, patient: str | None = None) -> Stored | None:
        """The resource as stored now, in the record of `patient` (a Patient is in its own) if known."""
        known = resource_id if resource_type == "Patient" else patient
        found = await self._on_record(self.repository.reader(None).find, resource_type, {"_id": resource_id}, known)
        stored = from_current(resource_type, found[0]) if found else None
        return None if stored is None or stored.deleted else stored

    @staticmethod
    async def _on_record(find: Callable[..., Awaitable[list[dict[str, Any]]]], resource_type: str,
                         query: dict[str, Any], patient: str | None) -> list[dict[str, Any]]:
        """The first document matching `query`, looked for in `patient`'s record first: naming it
        makes the read one shard's on a cluster (policies/sharding.json). A resource moved to
        another record since the event was written is then looked for everywhere."""
        found = await find(resource_type, {**query, "pat": patient}, limit=1) if patient else []
        return found or await find(resource_type, query, limit=1)

    async def _representatives(self, patient_id: str, patient: dict[str, Any]) -> list[tuple[str, list[str]]]:
        """A minor's parents and guardians with an e-mail address (fhir_server.access.records)."""
        if not _minor(patient):
            return []
        people = await self.repository.reader(None).find("RelatedPerson", {"pat": patient_id, "del": False})
        found: list[tuple[str, list[str]]] = []
        for doc in people:
            person = doc.get("res") or {}
            roles = {c.get("code") for r in person.get("relationship") or [] if isinstance(r, dict)
                     for c in r.get("coding") or [] if isinstance(c, dict)}
            if person.get("active") is not False and roles & REPRESENTATIVE_ROLES and _emails(person):
                found.append((str(doc["_id"]), _emails(person)))
        return found

    async def _practitioners(self, key: str) -> list[Stored]:
        """The Practitioners a record's key names: `Practitioner/{id}` or `idnatps:{IdNatPs}`."""
        if key.startswith("Practitioner/"):
            found = await self._current("Practitioner", key.split("/", 1)[1])
            return [found] if found is not None else []
        if key.startswith("idnatps:"):
            ids = await self.repository.ids("Practitioner", [("identifier", f"{IDNATPS_SYSTEM}|{key[8:]}")], None, 5)
            return [p for p in [await self._current("Practitioner", i) for i in ids] if p is not None]
        return []

    async def _professional(self, idnatps: str | None) -> str:
        if not idnatps:
            return "?"
        for practitioner in await self._practitioners(f"idnatps:{idnatps}"):
            name = _name(practitioner.resource)
            if name:
                return f"{name} (IdNatPs {idnatps})"
        return f"IdNatPs {idnatps}"

    # -- the worker -----------------------------------------------------------------------------

    async def _run(self) -> None:
        await in_rounds(self._wake, self._round, POLL_SECONDS, log, "mail notifications")

    async def _round(self) -> None:
        if await self._still_held():
            if time.monotonic() >= self._next_scan:
                await self._scan()
                self._next_scan = time.monotonic() + self.scan_seconds
            await self._send_due()

    async def _hold_lease(self) -> bool:
        assert self._lease is not None
        held = await self._lease.hold(LEASE_SECONDS)
        if not held:
            # Whoever holds it scans; if this process takes it over later, it scans at once.
            self._next_scan = 0.0
        return held

    async def _still_held(self) -> bool:
        assert self._lease is not None
        return self._lease.fresh(LEASE_SECONDS / 3) or await self._hold_lease()

    async def _scan(self) -> None:
        """Queue the documents whose INVISIBLE_PATIENT month ended since the last scan. The first
        scan of a store only sets the mark: nothing was promised before notifications existed."""
        marks = self.repository.database.collection(JOB_MARKS)
        upto = instant(now_instant())
        async with self.repository.database.gate.read():
            mark = await marks.find_one({"_id": SCAN_MARK})
        if mark is not None:
            found = await self.repository.reader(None).find(
                "DocumentReference", {"acc.vfp": {"$gt": mark["upto"], "$lte": upto}, "del": False})
            for doc in found:
                document = from_current("DocumentReference", doc)
                if self._visible_now(document):
                    await self._document_available(document)
        await self._remind_directives()
        await self._remind_prevention()
        # Only once every document found is queued: a crash before this scans the same span again,
        # and the queue's keys keep each message single.
        async with self.repository.database.gate.write(exclude_readers=False):
            await marks.replace_one({"_id": SCAN_MARK}, {"_id": SCAN_MARK, "upto": upto}, upsert=True)

    async def _remind_directives(self) -> None:
        """Advance directives remind their author that they exist, once per `reminder_days` since
        their last version (CSP R.1111-19); the queue's key (document, version, period) keeps each
        reminder single however often the scan runs."""
        directives = area("advance-directives")
        ids = await self.repository.ids(directives.resource_type, list(directives.criteria), None, MAX_DIRECTIVES)
        today = parse_instant(now_instant())
        for document_id in ids:
            document = await self._current(directives.resource_type, document_id)
            if document is None or document.resource is None or document.patient is None:
                continue
            periods = int((today - parse_instant(document.last_updated)).days // self.reminder_days)
            if periods < 1:
                continue
            patient = await self._current("Patient", document.patient)
            if patient is None:
                continue
            values = {"title": _title(document.resource), "date": _day(document.resource.get("date")
                                                                         or document.last_updated)}
            key = f"directive/{document.id}/{document.version}/{periods}"
            await self._tell(key, "advance-directive-reminder", values, await self._author_emails(document, patient),
                             f"author of DocumentReference/{document.id}")

    async def _remind_prevention(self) -> None:
        """One message per prevention reminder that came due (fhir_server.agenda.reminders), to the
        patient: the queue's key (the reminder, whose id names its due date) keeps it single."""
        if self._prevention is None or not self._prevention.enabled:
            return
        for reminder in await due_reminders(self.repository, now().date()):
            patient = await self._current("Patient", str(reminder.patient))
            if patient is None or reminder.resource is None:
                continue
            values = {"title": str(((reminder.resource.get("payload") or [{}])[0]).get("contentString") or ""),
                      "date": _day(reminder.resource.get("occurrenceDateTime"))}
            await self._tell(f"prevention/{reminder.id}", "prevention-reminder", values, _emails(patient.resource),
                             f"Patient/{reminder.patient}")

    async def _author_emails(self, document: Stored, patient: Stored) -> list[str]:
        """The directive's author: a professional who wrote it with the patient, else the patient."""
        emails: list[str] = []
        for author in (document.resource or {}).get("author") or []:
            reference = (author or {}).get("reference") or ""
            if reference.startswith("Practitioner/"):
                for practitioner in await self._practitioners(reference):
                    emails += _emails(practitioner.resource)
        return emails or _emails(patient.resource)

    async def _send_due(self) -> None:
        for job in await self.queue.due(BATCH):
            if not await self._still_held():
                return
            if await self.queue.was_sent(job["_id"]):
                await self.queue.drop(job)
                continue
            try:
                await self.transport.send(self.sender, job["to"], job["raw"], job["mid"])
            except MailRefused as exc:
                log.warning("mail %s refused for good: %s", job["_id"], exc)
                await self.queue.done(job, "refused", str(exc))
                continue
            except MailUnavailable as exc:
                delay = await self.queue.retry_later(job, str(exc))
                log.warning("mail %s not sent (%s), retried in %.0fs", job["_id"], exc, delay)
                # The next ones would most likely fail the same way: they wait for the next round.
                return
            await self.queue.done(job, "sent")
