"""Prevention reminders as FHIR resources in the patient's record (issue 15; docs/AGENDA.md).

A reminder is a CommunicationRequest (it is in the R4 Patient compartment through `subject`,
so it belongs to the patient's record and follows its access rules; Task is not):
- `identifier` (REMINDER_SYSTEM) = the rule id of `policies/prevention-reminders.json`, and
  `category` the fixed AGENDA_CATEGORY, so a search finds the reminders;
- `occurrenceDateTime` = the due date; `payload` = the rule's title; `status` active, or revoked
  once the patient dismissed it;
- its id is derived from (patient, rule, due date): recomputing writes the same resource, and a
  dismissed reminder stays dismissed until its due date moves (new evidence, next cycle).

When: after commit (the outbox dispatcher, `committed`), each write of a Patient or of a type the
rules read evidence from recomputes that patient's reminders, idempotently; the daily mail scan
recomputes the patients it is about to remind (ages move on without writes).

Opting out: the Patient extension OPT_OUT_EXTENSION with `valueBoolean` false: no reminders
(existing ones are removed). Who writes reminders: the server alone; the patient may only dismiss
one (status active -> revoked, or back), nothing else of it (`check_record`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from fhir_server.access.records import SHUT_STATUSES, record_status
from fhir_server.agenda import prevention
from fhir_server.agenda.prevention import Evidence
from fhir_server.errors import FhirError
from fhir_server.security.callers import PLATFORM
from fhir_server.storage.documents import Stored, from_current
from fhir_server.storage.hooks import Hooks, RecordWriteCheck
from fhir_server.timefmt import now, now_instant

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository, Session

log = logging.getLogger("fhir_server.agenda")
REMINDER_SYSTEM = "https://fhir-server.example.org/prevention-rule"
AGENDA_CATEGORY = {"system": "https://fhir-server.example.org/CodeSystem/agenda", "code": "prevention-reminder",
                   "display": "Rappel de prévention / Prevention reminder"}
OPT_OUT_EXTENSION = "https://fhir-server.example.org/StructureDefinition/prevention-reminders"
# What the patient may set a reminder's status to (R4 request-status): dismissed, or restored.
PATIENT_STATUSES = ("active", "revoked")
# A record holds at most this many resources of one evidence type that the rules look at.
MAX_EVIDENCE = 10_000
# A reminder is mailed when its due date is at most this old: a server stopped for a few days still
# sends what came due meanwhile.
MAIL_WINDOW_DAYS = 7
# Reminders coming due looked at per mail scan, at most.
MAX_DUE = 100_000
NAMESPACE = uuid.UUID("6f1d6c1e-9b7e-4f55-9a43-4a3f3c1e2b15")


def is_reminder(resource: dict[str, Any] | None) -> bool:
    return any(isinstance(i, dict) and i.get("system") == REMINDER_SYSTEM
               for i in (resource or {}).get("identifier") or [])


def opted_out(patient: dict[str, Any]) -> bool:
    return any(isinstance(e, dict) and e.get("url") == OPT_OUT_EXTENSION and e.get("valueBoolean") is False
               for e in patient.get("extension") or [])


def reminder_id(patient_id: str, rule: str, day: date) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{patient_id}/{rule}/{day.isoformat()}"))


def reminder(patient_id: str, due: prevention.Due) -> dict[str, Any]:
    return {
        "resourceType": "CommunicationRequest", "id": reminder_id(patient_id, due.rule, due.day),
        "identifier": [{"system": REMINDER_SYSTEM, "value": due.rule}],
        "status": "active",
        "category": [{"coding": [AGENDA_CATEGORY]}],
        "subject": {"reference": f"Patient/{patient_id}"},
        "payload": [{"contentString": due.title}],
        "occurrenceDateTime": due.day.isoformat(),
    }


# ------------------------------------------------------------------------------ reading the record
def _day(value: Any) -> date | None:
    """The day of a FHIR date or dateTime; a year or a month alone counts from its first day."""
    if not isinstance(value, str):
        return None
    text = {4: value + "-01-01", 7: value + "-01"}.get(len(value), value[:10])
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _at(resource: dict[str, Any], path: str) -> Any:
    value: Any = resource
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def evidence_of(resource_type: str, resource: dict[str, Any]) -> list[Evidence]:
    """The dated codings of one resource, as `recordElements` of the rules file says to read them."""
    elements = prevention.policy()["recordElements"][resource_type]
    if resource.get("status") in elements["excludedStatuses"]:
        return []
    day = next((d for d in (_day(_at(resource, p)) for p in elements["dates"]) if d is not None), None)
    if day is None:
        return []
    found = []
    for element in elements["codes"]:
        concepts = _at(resource, element)
        for concept in concepts if isinstance(concepts, list) else [concepts]:
            for coding in (concept or {}).get("coding") or [] if isinstance(concept, dict) else []:
                if isinstance(coding, dict) and isinstance(coding.get("system"), str) \
                        and isinstance(coding.get("code"), str):
                    found.append(Evidence(coding["system"], coding["code"], day))
    return found


async def _evidence(repository: Repository, patient_id: str) -> list[Evidence]:
    reader = repository.reader(None)
    found: list[Evidence] = []
    for resource_type in prevention.policy()["recordElements"]:
        for doc in await reader.find(resource_type, {"pat": patient_id, "del": False}, limit=MAX_EVIDENCE):
            found += evidence_of(resource_type, from_current(resource_type, doc).resource or {})
    return found


def wanted(patient_id: str, patient: dict[str, Any], today: date, evidence: list[Evidence]) -> list[dict[str, Any]]:
    """The reminders the patient should have today (none when opted out, deceased, or the record
    refuses deposits)."""
    born = _day(patient.get("birthDate"))
    if born is None or opted_out(patient) or record_status(patient) in SHUT_STATUSES \
            or patient.get("deceasedBoolean") is True or patient.get("deceasedDateTime"):
        return []
    sex = patient.get("gender") if isinstance(patient.get("gender"), str) else None
    return [reminder(patient_id, due) for due in prevention.due_reminders(born, sex, today, evidence)]


async def current_reminders(repository: Repository, patient_id: str) -> list[Stored]:
    found = await repository.reader(None).find("CommunicationRequest", {"pat": patient_id, "del": False})
    stored = [from_current("CommunicationRequest", d) for d in found]
    return [s for s in stored if is_reminder(s.resource)]


async def refresh(repository: Repository, patient_id: str) -> None:
    """Make the patient's stored reminders what the rules say today; writes only the differences."""
    found = await repository.reader(None).find("Patient", {"_id": patient_id, "pat": patient_id}, limit=1)
    patient = from_current("Patient", found[0]) if found else None
    desired: dict[str, dict[str, Any]] = {}
    if patient is not None and not patient.deleted and patient.resource is not None:
        evidence = await _evidence(repository, patient_id)
        desired = {r["id"]: r for r in wanted(patient_id, patient.resource, now().date(), evidence)}
    have = {s.id for s in await current_reminders(repository, patient_id)}
    if have == set(desired):
        return
    stamp = now_instant()

    async def work(session: Session) -> None:
        # One transaction: the agenda never shows half of a recomputation.
        for obsolete in sorted(have - set(desired)):
            await repository.delete_in(session, PLATFORM, "CommunicationRequest", obsolete)
        for new_id in sorted(set(desired) - have):
            await repository.update_in(session, PLATFORM, "CommunicationRequest", new_id,
                                       {**desired[new_id], "authoredOn": stamp})
    try:
        await repository.run(work, ["CommunicationRequest"])
    except FhirError as exc:
        # The record refuses the write (closed meanwhile): the next write to it tries again.
        log.info("prevention reminders of Patient/%s not updated: %s", patient_id, exc.diagnostics)


# ------------------------------------------------------------------------------ hooks
class PreventionReminders:
    """The after-commit hook; `start` gives it the repository once the store is open."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._repository: Repository | None = None

    def start(self, repository: Repository) -> None:
        self._repository = repository

    async def committed(self, event: dict[str, Any]) -> None:
        if not self.enabled or self._repository is None or event.get("kind") != "write" or not event.get("pat"):
            return
        resource_type, _, resource_id = str(event.get("rid") or "").partition("/")
        if resource_type != "Patient" and resource_type not in prevention.policy()["recordElements"]:
            return
        if resource_type != "Patient" and event.get("method") != "DELETE" and int(event.get("vid") or 1) == 1 \
                and not await self._is_evidence(resource_type, resource_id, str(event["pat"])):
            # A new resource no rule reads (most Observations): nothing to recompute. An update or a
            # deletion may take evidence away, so it always recomputes.
            return
        await refresh(self._repository, str(event["pat"]))

    async def _is_evidence(self, resource_type: str, resource_id: str, patient_id: str) -> bool:
        assert self._repository is not None
        query = {"_id": resource_id, "pat": patient_id}
        found = await self._repository.reader(None).find(resource_type, query, limit=1)
        resource = from_current(resource_type, found[0]).resource if found else None
        return resource is not None and prevention.counts_for_any(evidence_of(resource_type, resource))


def patient_dismisses(check: RecordWriteCheck) -> bool:
    """A patient's change of one of their reminders that only sets its status to active or revoked:
    what `fhir_server.access.rules` lets a patient do to what the server deposited."""
    current = check.current.resource if check.current is not None else None
    after = check.resource
    if check.caller.kind != "patient" or after is None or current is None or not is_reminder(current):
        return False

    def rest(resource: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in resource.items() if k not in ("meta", "status", "id")}
    return after.get("status") in PATIENT_STATUSES and rest(after) == rest(current)


async def check_record(check: RecordWriteCheck) -> None:
    """Reminders are the server's: others write none, and change one only as `patient_dismisses` says."""
    if check.resource_type != "CommunicationRequest" or check.caller.kind == "platform":
        return
    current = check.current.resource if check.current is not None and not check.current.deleted else None
    if not is_reminder(current) and not is_reminder(check.resource):
        return
    if not patient_dismisses(check):
        raise FhirError(403, "forbidden", "Prevention reminders are written by the server; the patient may only "
                        "dismiss one (status revoked) or restore it (status active)")


def register(hooks: Hooks) -> None:
    """The record-write rule, for every process that writes the record (app.record_hooks); the
    server adds `PreventionReminders.committed` as an after-commit hook."""
    # The file is read now: a broken rules file stops the start, not a request.
    prevention.policy()
    hooks.record_writes.append(check_record)


async def due_reminders(repository: Repository, today: date) -> list[Stored]:
    """The active reminders that came due in the last MAIL_WINDOW_DAYS, each after its patient's
    reminders were recomputed (the person may have aged out of a rule, or the record changed, since
    it was written). One overdue when first computed (a new record: a dozen at once) is not mailed;
    it is in the agenda."""
    since = today - timedelta(days=MAIL_WINDOW_DAYS)
    params = [("category", f"{AGENDA_CATEGORY['system']}|{AGENDA_CATEGORY['code']}"), ("status", "active"),
              ("occurrence", f"ge{since.isoformat()}"), ("occurrence", f"le{today.isoformat()}")]
    ids = await repository.ids("CommunicationRequest", params, None, MAX_DUE)
    patients: set[str] = set()
    for reminder_id_ in ids:
        stored = await repository.find_current(None, "CommunicationRequest", reminder_id_)
        if stored is not None and stored.patient is not None:
            patients.add(stored.patient)
    due: list[Stored] = []
    for patient_id in sorted(patients):
        await refresh(repository, patient_id)
        due += [s for s in await current_reminders(repository, patient_id)
                if (s.resource or {}).get("status") == "active"
                and since.isoformat() <= str((s.resource or {}).get("occurrenceDateTime")) <= today.isoformat()]
    return due
