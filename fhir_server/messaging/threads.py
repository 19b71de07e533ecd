"""The rules of secure messaging (issue 15; docs/ACCESS-RULES.md "Secure messaging"), as a record-write
hook on the one access path, after the record rules (which already refuse any deposit into an opposed
or closed record):

- only a professional or an establishment opens a thread with a patient; a patient may open one
  only with a pharmacy that dispensed to them within the policy's months (a MedicationDispense of
  their record naming it by FINESS);
- every thread is between its patient (`subject`) and professionals or establishments, named by
  identifier or by a Practitioner, PractitionerRole or Organization carrying it (looked up in the
  write's transaction, as the participant rule keys them: `participants.resolve`); never another
  patient;
- a message is `partOf` its thread's header, goes to everyone in the thread, is sent by the caller,
  and `inResponseTo` names messages of the same thread; nobody writes into a closed thread;
- a professional or establishment taking part closes (`completed`) and reopens (`in-progress`) it;
- a message is not changed once sent, except its `received` time, set once by a recipient
  (`read_state.mark_read`); threads and messages are not deleted (the platform excepted);
- a professional the patient blocked writes nothing to them;
- an attachment is a Binary whose securityContext is the thread header, of an allowed type (its
  signature checked against its bytes where every Binary is stored), at most the configured size.
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import TYPE_CHECKING, Any

from fhir_server.access.participants import Names, reference_key, resolve, stored_names
from fhir_server.access.records import load, professional_keys
from fhir_server.access.rules import unrestricted
from fhir_server.errors import FhirError
from fhir_server.file_signatures import media_type
from fhir_server.messaging.policy import is_closed, kind, policy, thread_of
from fhir_server.security.callers import Caller
from fhir_server.storage.documents import Stored, from_current
from fhir_server.storage.hooks import Hooks, RecordWriteCheck
from fhir_server.timefmt import now

if TYPE_CHECKING:
    from fhir_server.storage.repository import Reader, Repository, Session, WriteRule

# How the patient of the thread is named among its participants (beside `ps:` and `org:` keys).
PATIENT = "patient"
# MedicationDispenses of one record looked at for the pharmacy exception, at most: a bound on the
# work a patient's write can cause; past it the exception may be refused, never wrongly granted.
MAX_DISPENSES = 2000


def _forbidden(message: str) -> FhirError:
    return FhirError(403, "forbidden", message)


def _invalid(message: str, where: str) -> FhirError:
    return FhirError(422, "business-rule", message, [where])


def caller_side(caller: Caller) -> str | None:
    """How a thread names the caller: `ps:{IdNatPs}`, `org:{FINESS}` (an establishment's system), or
    the patient (their own token or their legal representative's, which the record rules checked)."""
    if caller.kind == "practitioner" and caller.idnatps:
        return f"ps:{caller.idnatps}"
    if caller.kind == "system" and caller.organization:
        return f"org:{caller.organization}"
    if caller.kind == "patient":
        return PATIENT
    return None


def _named(reference: Any, patient: str, where: str, names: Names, within: dict[str, Any]) -> str:
    if isinstance(reference, dict) and reference.get("reference") == f"Patient/{patient}":
        return PATIENT
    key = names.key(reference, within)
    if key is not None:
        return key
    target = reference.get("reference") if isinstance(reference, dict) else None
    if isinstance(target, str) and (target.startswith("Patient/") or "/Patient/" in target):
        raise _forbidden("No patient-to-patient messages: a thread is between its patient and professionals "
                         "or establishments")
    raise _invalid("Name a professional by their IdNatPs (identifier system urn:oid:1.2.250.1.71.4.2.1) or a "
                   "Practitioner (PractitionerRole) carrying it, an establishment by its FINESS "
                   "(urn:oid:1.2.250.1.71.4.2.2) or an Organization carrying it, and the patient as the subject "
                   "(Patient/{id})", where)


def sender_of(resource: dict[str, Any], patient: str, names: Names) -> str:
    if not isinstance(resource.get("sender"), dict):
        raise _invalid("A message and a thread name their sender", "Communication.sender")
    return _named(resource["sender"], patient, "Communication.sender", names, resource)


def recipients_of(resource: dict[str, Any], patient: str, names: Names) -> set[str]:
    """`names`: who its references name (`participants.resolve` of the resource)."""
    return {_named(r, patient, f"Communication.recipient[{i}]", names, resource)
            for i, r in enumerate(resource.get("recipient") or [])}


def participants_of(resource: dict[str, Any], patient: str, names: Names) -> set[str]:
    return {sender_of(resource, patient, names), *recipients_of(resource, patient, names)}


def _months_ago(months: int) -> str:
    """The same day `months` months ago, or that month's last day when shorter."""
    today = now().date()
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    return date(year, month + 1, min(today.day, calendar.monthrange(year, month + 1)[1])).isoformat()


async def _dispensed_by(reader: Reader, patient: str, finess: str) -> bool:
    """Whether a MedicationDispense of the record names this pharmacy (performer.actor or location,
    by FINESS) and was handed over (else prepared) within the policy's months."""
    since = _months_ago(int(policy()["pharmacyMonths"]))
    own = reader.repository.reader(None, reader.session)
    recent: list[tuple[dict[str, Any], list[Any]]] = []
    for doc in await own.find("MedicationDispense", {"pat": patient, "del": False}, {"ix": 0, "sk": 0},
                              limit=MAX_DISPENSES):
        dispense = from_current("MedicationDispense", doc).resource or {}
        when = dispense.get("whenHandedOver") or dispense.get("whenPrepared")
        if dispense.get("status") not in (None, "completed") or not isinstance(when, str) or when[:10] < since:
            continue
        named = [p.get("actor") for p in dispense.get("performer") or [] if isinstance(p, dict)]
        named.append(dispense.get("location"))
        if any(reference_key(r) == f"org:{finess}" for r in named):
            return True
        recent.append((dispense, named))
    # Pharmacies named by id (Organization/{id}): one lookup for all of them.
    names = await stored_names(reader.repository, reader.session,
                               {r["reference"] for _, named in recent for r in named
                                if isinstance(r, dict) and isinstance(r.get("reference"), str)})
    return any(names.key(r, dispense) == f"org:{finess}" for dispense, named in recent for r in named)


async def check_record(check: RecordWriteCheck) -> None:
    if check.resource_type != "Communication":
        return
    before = check.current.resource if check.current is not None and not check.current.deleted else None
    after = check.resource
    was, now_kind = kind(before), kind(after)
    if was is None and now_kind is None:
        return
    caller = check.caller
    if unrestricted(caller):
        return
    if after is None:
        raise _forbidden("Threads and messages are kept: a professional closes a thread instead")
    if before is not None and was != now_kind:
        raise _invalid("A thread stays a thread and a message a message", "Communication.category")
    patient = check.patient
    subject = (after.get("subject") or {}).get("reference")
    if patient is None or subject != f"Patient/{patient}":
        raise _invalid("A thread and its messages name their patient as subject (Patient/{id})", "Communication.subject")
    side = caller_side(caller)
    if side is None:
        raise _forbidden("Only the patient, their professionals and establishments write secure messages")
    record = await load(check.reader, patient)
    if caller.kind == "practitioner" and await professional_keys(check.reader, caller) & record.denied:
        raise _forbidden("The patient blocked you: you cannot write to them")
    names = await resolve(check.reader, "Communication", [before, after])
    if now_kind == "thread":
        if before is None:
            await _open_thread(check, after, patient, side, names)
        else:
            _close_or_reopen(before, after, patient, side, names)
    elif before is None:
        await _send(check, after, patient, side, names)
    else:
        _mark_read(before, after, patient, side, names)


async def _open_thread(check: RecordWriteCheck, header: dict[str, Any], patient: str, side: str,
                       names: Names) -> None:
    if header.get("partOf"):
        raise _invalid("A thread header is part of nothing; its messages are partOf it", "Communication.partOf")
    if header.get("status") != policy()["openStatus"]:
        raise _invalid(f"A thread opens with status {policy()['openStatus']}", "Communication.status")
    people = participants_of(header, patient, names)
    others = people - {PATIENT}
    if PATIENT not in people or not others:
        raise _invalid("A thread is between its patient (sender or recipient) and at least one professional or "
                       "establishment", "Communication.recipient")
    if sender_of(header, patient, names) != side:
        raise _invalid("You open a thread as its sender", "Communication.sender")
    if side != PATIENT:
        return
    pharmacies = [o.split(":", 1)[1] for o in others if o.startswith("org:")]
    if len(pharmacies) != len(others) or not all([await _dispensed_by(check.reader, patient, f) for f in pharmacies]):
        raise _forbidden(f"Only a professional or an establishment opens a thread with a patient; a patient may "
                         f"write first only to a pharmacy that dispensed to them in the last "
                         f"{policy()['pharmacyMonths']} months")


def _unchanged(before: dict[str, Any], after: dict[str, Any], *changing: str) -> bool:
    def kept(resource: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in resource.items() if k not in ("meta", "id", *changing)}
    return kept(before) == kept(after)


def _close_or_reopen(before: dict[str, Any], after: dict[str, Any], patient: str, side: str, names: Names) -> None:
    if side == PATIENT or side not in participants_of(before, patient, names):
        raise _forbidden("Only a professional or an establishment taking part in a thread closes or reopens it")
    statuses = (policy()["openStatus"], policy()["closedStatus"])
    if after.get("status") not in statuses or not _unchanged(before, after, "status"):
        raise _invalid(f"Only a thread's status changes: {statuses[1]} closes it, {statuses[0]} reopens it",
                       "Communication.status")


async def _send(check: RecordWriteCheck, message: dict[str, Any], patient: str, side: str, names: Names) -> None:
    repository = check.reader.repository
    thread_id = thread_of(message)
    header = await repository.current("Communication", thread_id, check.session) if thread_id else None
    if header is None or header.deleted or kind(header.resource) != "thread" or header.patient != patient:
        raise _invalid("A message is partOf one thread header (Communication/{id}) of its patient's record",
                       "Communication.partOf")
    assert header.resource is not None
    people = participants_of(header.resource, patient, await resolve(check.reader, "Communication", [header.resource]))
    if side not in people:
        raise _forbidden("You take no part in this thread")
    if is_closed(header.resource):
        raise FhirError(409, "business-rule", "This thread is closed: nobody writes in it until a professional "
                        "taking part reopens it", ["Communication.partOf"])
    if sender_of(message, patient, names) != side:
        raise _invalid("You send a message as its sender", "Communication.sender")
    if participants_of(message, patient, names) != people:
        raise _invalid("A message goes to everyone in its thread: its sender and recipients are the thread's",
                       "Communication.recipient")
    if message.get("status") != policy()["messageStatus"]:
        raise _invalid(f"A message is sent with status {policy()['messageStatus']}", "Communication.status")
    if message.get("received"):
        raise _invalid("A message is received when its recipient reads it, not when it is sent",
                       "Communication.received")
    for i, answered in enumerate(message.get("inResponseTo") or []):
        await _same_thread(repository, check.session, answered, thread_id, f"Communication.inResponseTo[{i}]")
    payload = message.get("payload") or []
    if not payload:
        raise _invalid("A message holds text (contentString) or an attachment (contentAttachment)",
                       "Communication.payload")
    for i, part in enumerate(payload):
        if isinstance(part, dict) and "contentAttachment" in part:
            await _attached(repository, check.session, part["contentAttachment"], thread_id,
                            f"Communication.payload[{i}].contentAttachment")
        elif not isinstance(part, dict) or "contentString" not in part:
            raise _invalid("A message holds text (contentString) or an attachment (contentAttachment)",
                           f"Communication.payload[{i}]")


async def _same_thread(repository: Repository, session: Session, reference: Any, thread_id: str | None,
                       where: str) -> None:
    target = reference.get("reference") if isinstance(reference, dict) else None
    found = None
    if isinstance(target, str) and target.startswith("Communication/") and target.count("/") == 1:
        found = await repository.current("Communication", target.split("/")[1], session)
    if found is None or found.deleted or (found.id != thread_id and thread_of(found.resource) != thread_id):
        raise _invalid("A message answers a message of its own thread (or its header)", where)


async def _attached(repository: Repository, session: Session, attachment: Any, thread_id: str | None,
                    where: str) -> None:
    """An attachment names a Binary of the thread (securityContext its header) by url, declaring its type."""
    if not isinstance(attachment, dict) or attachment.get("data") is not None:
        raise _invalid("An attachment is a Binary of the thread named by url (Binary/{id}), not inline data", where)
    url = attachment.get("url")
    binary = None
    if isinstance(url, str) and url.startswith("Binary/") and url.count("/") == 1:
        binary = await repository.current("Binary", url.split("/")[1], session)
    context = ((binary.resource or {}).get("securityContext") or {}).get("reference") if binary else None
    if binary is None or binary.deleted or context != f"Communication/{thread_id}":
        raise _invalid("An attachment is a Binary whose securityContext is the thread header "
                       "(Communication/{id}), named by url Binary/{id}", f"{where}.url")
    declared = media_type(attachment.get("contentType"))
    if declared not in policy()["contentTypes"] or declared != media_type((binary.resource or {}).get("contentType")):
        raise _invalid(f"An attachment is one of {', '.join(policy()['contentTypes'])}, declared as its Binary is",
                       f"{where}.contentType")


def _mark_read(before: dict[str, Any], after: dict[str, Any], patient: str, side: str, names: Names) -> None:
    if not _unchanged(before, after, "received"):
        raise _forbidden("A message is not changed once sent")
    if before.get("received") or not after.get("received"):
        raise _invalid("A message is marked read once, by setting its received time", "Communication.received")
    if side not in recipients_of(before, patient, names):
        raise _forbidden("Only a recipient of a message marks it read")


def attachment_size(limit: int) -> WriteRule:
    """A Binary of a thread (securityContext a thread header): an allowed type, at most `limit` bytes;
    its bytes are known once stored, so this is a write rule, inside the write's transaction."""
    async def rule(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
        if stored.deleted or stored.resource is None or unrestricted(caller):
            return
        context = (stored.resource.get("securityContext") or {}).get("reference")
        if not isinstance(context, str) or not context.startswith("Communication/") or context.count("/") != 1:
            return
        header = await repository.current("Communication", context.split("/")[1], session)
        if header is None or kind(header.resource) != "thread":
            return
        if media_type(stored.resource.get("contentType")) not in policy()["contentTypes"]:
            raise _invalid(f"An attachment is one of {', '.join(policy()['contentTypes'])}", "Binary.contentType")
        size = (stored.blob or {}).get("size")
        if isinstance(size, int) and size > limit:
            raise FhirError(413, "too-costly", f"An attachment holds at most {limit} bytes; this one has {size}",
                            ["Binary.data"])
    return rule


def register(hooks: Hooks) -> None:
    """After the record rules (an opposed or closed record refuses first), before the audit's last hook."""
    policy()
    hooks.record_writes.append(check_record)


def register_write_rules(repository: Repository, attachment_max_bytes: int) -> None:
    repository.write_rules.setdefault("Binary", []).append(attachment_size(attachment_max_bytes))
