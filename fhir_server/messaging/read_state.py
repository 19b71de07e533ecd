"""Read state of secure messages (issue 15): a recipient marks a message read with
`POST [base]/Communication/{id}/$mark-read`, which sets its `received` time once; reads never write.
`GET [base]/Patient/{id}/$unread-messages` counts, per thread of the record the caller sees, the
messages addressed to the caller not yet marked read (docs/ACCESS-RULES.md "Secure messaging").
"""

from __future__ import annotations

from typing import Any

from fhir_server.access.participants import Names, resolve
from fhir_server.errors import FhirError
from fhir_server.messaging.policy import kind, thread_of
from fhir_server.messaging.threads import caller_side, recipients_of
from fhir_server.security.callers import Caller
from fhir_server.storage.documents import Stored, from_current
from fhir_server.storage.repository import Repository
from fhir_server.timefmt import now_instant

# Communications of one record read for the counts, at most.
MAX_COMMUNICATIONS = 10_000


async def mark_read(repository: Repository, caller: Caller, message_id: str) -> Stored:
    """The message, its `received` set now if it was not; only a recipient may (the write rules
    say so again in the write's transaction)."""
    stored = await repository.read(caller, "Communication", message_id)
    message = stored.resource or {}
    if kind(message) != "message" or stored.patient is None:
        raise FhirError(422, "business-rule", "$mark-read marks a secure message (category message) read")
    side = caller_side(caller)
    names = await resolve(repository.reader(None), "Communication", [message])
    if side is None or side not in recipients_of(message, stored.patient, names):
        raise FhirError(403, "forbidden", "Only a recipient of a message marks it read")
    if message.get("received"):
        return stored
    written = await repository.update(caller, "Communication", message_id, {**message, "received": now_instant()},
                                      if_match=stored.version)
    return written.stored


def _addressed(message: dict[str, Any], patient: str, side: str, names: Names) -> bool:
    try:
        return side in recipients_of(message, patient, names)
    except FhirError:
        # Stored before the rules, or by the platform: not a message anyone can be counted in.
        return False


async def unread(repository: Repository, caller: Caller, patient_id: str) -> dict[str, Any]:
    """A Parameters: one `thread` per thread header the caller sees (header, status, unread), and
    the total `unread`."""
    reader = await repository.reader(caller).open([patient_id])
    side = caller_side(caller)
    docs = await reader.find("Communication", {"pat": patient_id, "del": False}, {"ix": 0, "sk": 0},
                             sort=[("sid", 1)], limit=MAX_COMMUNICATIONS)
    headers: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    communications = [from_current("Communication", doc) for doc in docs]
    unread_messages = [s.resource for s in communications
                       if kind(s.resource) == "message" and not (s.resource or {}).get("received")]
    # Who the unread messages' references by id name: one lookup for them all, none per message.
    names = await resolve(reader, "Communication", unread_messages) if side is not None else Names({})
    for stored in communications:
        resource = stored.resource or {}
        if kind(resource) == "thread":
            headers[stored.id] = resource
        elif kind(resource) == "message" and side is not None and not resource.get("received") \
                and _addressed(resource, patient_id, side, names):
            thread = thread_of(resource)
            if thread is not None:
                counts[thread] = counts.get(thread, 0) + 1
    threads = []
    for header_id, header in headers.items():
        parts: list[dict[str, Any]] = [{"name": "header", "valueReference": {"reference": f"Communication/{header_id}"}},
                                       {"name": "status", "valueCode": header.get("status", "unknown")},
                                       {"name": "unread", "valueInteger": counts.get(header_id, 0)}]
        threads.append({"name": "thread", "part": parts})
    total = sum(counts.get(h, 0) for h in headers)
    return {"resourceType": "Parameters", "parameter": [*threads, {"name": "unread", "valueInteger": total}]}
