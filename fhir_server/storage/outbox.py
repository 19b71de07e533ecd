"""The transactional outbox: each write's event is committed in the write's own transaction.

An event's key starts with its commit time (the write's stamp), so reading pending events in key
order gives commit order, and with it each patient's order, with no global counter to contend on
(docs/DECISIONS.md, Audit and outbox). On the embedded store writers are serialised by the gate,
so stamp order is commit order; on MongoDB two transactions writing one resource conflict and the
later retries with a later stamp.

`OutboxStore` is the store side the dispatcher (fhir_server.events.dispatcher) uses: pending
events, removing them once delivered (what must be kept, the audit trail, is the consumers' own
append-only store), and the lease that lets one process at a time dispatch. So the outbox holds
only what is yet to be delivered, and needs no index beyond its key.
"""

from __future__ import annotations

from typing import Any

from pymongo import DeleteOne
from pymongo.asynchronous.client_session import AsyncClientSession

from fhir_server.security.callers import Caller
from fhir_server.storage.database import OUTBOX, Database
from fhir_server.storage.documents import Stored
from fhir_server.storage.leases import Lease
from fhir_server.storage.pending import PendingWrites
from fhir_server.timefmt import instant

LEASE_ID = "outbox-dispatcher"


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
    }


def add(pending: PendingWrites, session: AsyncClientSession, event: dict[str, Any]) -> None:
    """Queue an event with the transaction's other deferred writes: it commits with them or not at all."""
    pending.insert(session, OUTBOX, [event])


class OutboxStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.events = database.collection(OUTBOX)
        self.lease = Lease(database, LEASE_ID)

    async def pending(self, limit: int) -> list[dict[str, Any]]:
        """The oldest events not yet delivered, committed ones only.

        Read as a transaction of its own: the embedded store shows a transaction's writes before
        it commits, and the gate keeps every writer out meanwhile.
        """
        async def read(session: AsyncClientSession) -> list[dict[str, Any]]:
            cursor = self.events.find({}, session=session).sort("_id", 1).limit(limit)
            return await cursor.to_list(length=limit)

        return await self.database.in_transaction(read)

    async def depth(self) -> int:
        """How many events wait to be dispatched (the metrics' outbox gauge)."""
        async with self.database.gate.read():
            return int(await self.events.count_documents({}))

    async def delivered(self, ids: list[str]) -> None:
        # One equality per event (a range could take in an event committed meanwhile with an
        # earlier stamp, and the embedded store scans for `$in`), all in one delete command: one
        # round trip for the round's events.
        async def remove(session: AsyncClientSession) -> None:
            await self.events.bulk_write([DeleteOne({"_id": event_id}) for event_id in ids], session=session)

        await self.database.in_transaction(remove)
