"""The transactional outbox: each write's event is committed in the write's own transaction.

An event's key starts with its commit time (the write's stamp), so reading pending events in key
order gives commit order, and with it each patient's order, with no global counter to contend on
(docs/DECISIONS.md, Audit and outbox). On the embedded store writers are serialised by the gate,
so stamp order is commit order; on MongoDB two transactions of one patient writing the same
resource conflict and the later retries with a later stamp.

The dispatcher (fhir_server.events.dispatcher) hands pending events to the after-commit hooks and
then marks them done; a failed hook leaves them pending, so a restart loses nothing.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from fhir_server.security.callers import Caller
from fhir_server.storage.documents import Stored
from fhir_server.storage.pending import PendingWrites
from fhir_server.timefmt import instant

OUTBOX = "outbox"


def write_event(stored: Stored, method: str, caller: Caller) -> dict[str, Any]:
    rid = f"{stored.resource_type}/{stored.id}"
    return {
        "_id": f"{instant(stored.last_updated)}|{rid}/{stored.version}",
        "kind": "write",
        "method": method,
        "rid": rid,
        "vid": stored.version,
        "pat": stored.patient,
        "ts": instant(stored.last_updated),
        "caller": {"kind": caller.kind, "id": caller.id},
        "done": False,
    }


def add(pending: PendingWrites, session: AsyncClientSession, event: dict[str, Any]) -> None:
    """Queue an event with the transaction's other deferred writes: it commits with them or not at all."""
    pending.insert(session, OUTBOX, [event])


async def ensure_indexes(db: Any) -> None:
    await db[OUTBOX].create_index([("done", ASCENDING)])
