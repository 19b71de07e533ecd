"""The record's lifecycle (issue 14; `policies/record-lifecycle.json`; docs/ACCESS-RULES.md,
"Record lifecycle"), on the one write path, so every channel (FHIR, bundles, HL7 v2, the
operations of `api/lifecycle_routes.py`, the scheduler) obeys the same rules:

- who changes a record's status, from what to what (`check_transition`, a record-write hook,
  in the write's transaction): the patient or a legal representative through the operations the
  policy lists; the platform as it likes; professionals and systems never (`rules`);
- the dates the server keeps on the Patient: closure and deletion request, stamped with the
  server's now whatever a caller sends (the platform's own values excepted, for migrations), and
  the notice date no one but the platform writes;
- when the scheduler has something to do for a record (`due`, kept on the Patient's current
  document as the scalar `due` by `records.refresh_rules`) and what (`next_version`);
- what the server decides in a Patient write's transaction (write rules): the `purged` status
  empties the record. A death (PID-29/PID-30, `deceased[x]`) makes the closure due at once: the
  scheduler closes the record right after the write commits (`scheduler.Scheduler.committed`),
  not inside it, so the rest of the message that reported the death (its Encounter) is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from fhir_server.access.records import (
    CLOSED_EXTENSION,
    DELETION_EXTENSION,
    NOTICE_EXTENSION,
    STATUS_EXTENSION,
    record_status,
)
from fhir_server.access.insurer import is_insurer
from fhir_server.access.rules import unrestricted
from fhir_server.config import PROJECT_ROOT
from fhir_server.errors import FhirError
from fhir_server.record.purge import empty_record
from fhir_server.security.callers import Caller
from fhir_server.storage import outbox
from fhir_server.storage.hooks import Hooks, RecordWriteCheck
from fhir_server.timefmt import format_instant, instant, now_instant

if TYPE_CHECKING:
    from fhir_server.storage.documents import Stored
    from fhir_server.storage.repository import Repository, Session

POLICY_FILE = PROJECT_ROOT / "policies" / "record-lifecycle.json"
# On a Patient's current document: when the scheduler next has something to do for its record
# (an instant as stored, `timefmt.instant`); absent when nothing is due.
DUE = "due"
# When what is due is due at once (a death).
AT_ONCE = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The statuses whose Patient keeps a closure date.
ARCHIVED = ("closed", "purged")
# What a purged record's Patient keeps: enough to know the person (their INS, so a re-run of
# enrolment finds them and creates nothing) and that the record was deleted, nothing else.
PURGED_KEEPS = ("resourceType", "id", "identifier")


@dataclass(frozen=True)
class Operation:
    name: str
    sources: frozenset[str]
    target: str


@dataclass(frozen=True)
class Policy:
    objection: timedelta
    archive_years: int
    deletion_months: int
    operations: dict[str, Operation]

    def operation(self, before: str, after: str) -> Operation | None:
        """The patient's operation that turns `before` into `after`, if any."""
        return next((o for o in self.operations.values() if before in o.sources and o.target == after), None)


@cache
def policy() -> Policy:
    data = orjson.loads(POLICY_FILE.read_bytes())
    operations = {name: Operation(name, frozenset(o["from"]), o["to"]) for name, o in data["operations"].items()}
    return Policy(timedelta(days=data["objectionDays"]), int(data["archiveYears"]), int(data["deletionMonths"]),
                  operations)


# ---------------------------------------------------------------------------------------- extensions
def extension(patient: dict[str, Any] | None, url: str) -> dict[str, Any] | None:
    for found in (patient or {}).get("extension") or []:
        if isinstance(found, dict) and found.get("url") == url:
            return found
    return None


def set_extension(patient: dict[str, Any], url: str, value: dict[str, Any] | None) -> None:
    """`patient`'s extension `url` replaced by `{url, **value}`, or removed for None."""
    others = [e for e in patient.get("extension") or [] if not (isinstance(e, dict) and e.get("url") == url)]
    if value is not None:
        others.append({"url": url, **value})
    if others:
        patient["extension"] = others
    else:
        patient.pop("extension", None)


def moment(value: dict[str, Any] | None) -> datetime | None:
    """The instant of a valueDateTime extension (a date alone: its first moment, UTC)."""
    text = (value or {}).get("valueDateTime")
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if len(text) > 10 else text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _later(start: datetime, *, years: int = 0, months: int = 0) -> datetime:
    """Calendar arithmetic: the same day `years` and `months` later (the month's last day when
    that day does not exist: 29 February ten years later is 28 February)."""
    total = start.month - 1 + months + 12 * years
    year, month = start.year + total // 12, total % 12 + 1
    for day in (start.day, 30, 29, 28):
        try:
            return start.replace(year=year, month=month, day=min(start.day, day))
        except ValueError:
            continue
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------- the schedule
def deceased(patient: dict[str, Any] | None) -> bool:
    return bool((patient or {}).get("deceasedBoolean") is True or (patient or {}).get("deceasedDateTime"))


def due(patient: dict[str, Any] | None) -> datetime | None:
    """When the scheduler has something to do for this record: at once for the open record of a
    person who died; six weeks after the notice of a pending record; the end of a closed record's
    archive, or three months after its deletion request, whichever comes first."""
    rules = policy()
    status = record_status(patient)
    if status in ("pending", "active") and deceased(patient):
        return AT_ONCE
    if status == "pending":
        notice = moment(extension(patient, NOTICE_EXTENSION))
        return notice + rules.objection if notice else None
    if status == "closed":
        closed = moment(extension(patient, CLOSED_EXTENSION))
        asked = moment(extension(patient, DELETION_EXTENSION))
        ends = [*([_later(closed, years=rules.archive_years)] if closed else []),
                *([_later(asked, months=rules.deletion_months)] if asked else [])]
        return min(ends) if ends else None
    return None


def next_version(patient: dict[str, Any], at: datetime) -> dict[str, Any] | None:
    """The Patient the scheduler writes for a record due at `at`, or None when nothing is due
    (any more: the job is idempotent, a second run finds nothing to do)."""
    when = due(patient)
    if when is None or when > at:
        return None
    status = record_status(patient)
    if status in ("pending", "active"):
        following = {k: v for k, v in patient.items() if k != "meta"}
        # A death closes the record (R.1111-36's closure: archived ten years), whoever reported it.
        set_extension(following, STATUS_EXTENSION, {"valueCode": "closed" if deceased(patient) else "active"})
        return following
    stub = {k: v for k, v in patient.items() if k in PURGED_KEEPS}
    stub["active"] = False
    for url in (CLOSED_EXTENSION, DELETION_EXTENSION):
        kept = extension(patient, url)
        set_extension(stub, url, {k: v for k, v in kept.items() if k != "url"} if kept else None)
    set_extension(stub, STATUS_EXTENSION, {"valueCode": "purged"})
    return stub


# ------------------------------------------------------------------------------------ the write check
def refusal(before: str, after: str) -> FhirError:
    if before == "active" and after == "opposed":
        return FhirError(422, "business-rule", "The record is already active: an objection is made while it is "
                         "pending (six weeks after the notice, R.1111-28); close it instead (Patient/$close)")
    if before == "purged":
        return FhirError(422, "business-rule", "This record was deleted: nothing can be restored; "
                         "Patient/$activate opens a new, empty one")
    return FhirError(422, "business-rule", f"A record's holder cannot turn {_an(before)} record into {after}")


def _an(status: str) -> str:
    return f"{'an' if status[0] in 'aeiou' else 'a'} {status}"


async def check_transition(check: RecordWriteCheck) -> None:
    """A Patient version's status change is one the caller may make; the lifecycle dates are the
    server's (stamped on the version about to be stored)."""
    if check.resource_type != "Patient" or check.resource is None:
        return
    resource = check.resource
    current = check.current.resource if check.current is not None and not check.current.deleted else None
    before = record_status(current) if current is not None else None
    after = record_status(resource)
    platform = unrestricted(check.caller)
    if before is not None and before != after and not platform and policy().operation(before, after) is None:
        raise refusal(before, after)
    _stamp(resource, current, before, after, platform, platform or is_insurer(check.caller))


def _stamp(resource: dict[str, Any], current: dict[str, Any] | None, before: str | None, after: str,
           platform: bool, notifies: bool) -> None:
    archived = before in ARCHIVED

    def value(url: str, source: dict[str, Any] | None) -> dict[str, Any] | None:
        found = extension(source, url)
        return {k: v for k, v in found.items() if k != "url"} if found else None

    stamp = {"valueDateTime": now_instant()}
    if after in ARCHIVED:
        closed = value(CLOSED_EXTENSION, resource) if platform else None
        set_extension(resource, CLOSED_EXTENSION, closed or (value(CLOSED_EXTENSION, current) if archived else None)
                      or stamp)
        asked = value(DELETION_EXTENSION, resource)
        if not platform and asked is not None:
            # Asked now, or kept from when it was asked; a request left out is withdrawn.
            asked = (value(DELETION_EXTENSION, current) if archived else None) or stamp
        set_extension(resource, DELETION_EXTENSION, asked)
    else:
        set_extension(resource, CLOSED_EXTENSION, None)
        set_extension(resource, DELETION_EXTENSION, None)
    if not notifies:
        # The notice is the insurer's fact (sent by enrolment), never a holder's or a hospital's.
        set_extension(resource, NOTICE_EXTENSION, value(NOTICE_EXTENSION, current))


# ------------------------------------------------------------------------------------- write rules
async def purge_when_purged(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
    """The `purged` status empties the record, the Patient's own past versions included (they
    hold the demographics the stub no longer does); an outbox event tells the audit trail."""
    if stored.deleted or record_status(stored.resource) != "purged":
        return
    removed = await empty_record(repository, session, stored.id, keep_versions_from=stored.version)
    outbox.add(repository.database.pending, session, {
        "_id": f"{instant(stored.last_updated)}|purge/{stored.id}", "kind": "record-purged", "pat": stored.id,
        "ts": instant(stored.last_updated), "removed": removed, "caller": {"kind": caller.kind, "id": caller.id}})


def scheduled(patient: dict[str, Any] | None) -> dict[str, Any]:
    """What the Patient's current document carries for the scheduler (`records.refresh_rules`
    writes it with the record's rules, after each Patient or Consent write: each version replaces
    the current document, so what is due is written again, when anything is)."""
    when = due(patient)
    return {DUE: instant(format_instant(when))} if when is not None else {}


def register(hooks: Hooks) -> None:
    policy()
    hooks.record_writes.append(check_transition)


def register_write_rules(repository: Repository) -> None:
    rules = repository.write_rules.setdefault("Patient", [])
    rules.append(purge_when_purged)
