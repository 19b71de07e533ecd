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

import time
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from fhir_server.security.callers import Caller
from fhir_server.storage.database import LEASES, OUTBOX, Database
from fhir_server.storage.documents import Stored
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
        self.leases = database.collection(LEASES)

    async def pending(self, limit: int) -> list[dict[str, Any]]:
        """The oldest events not yet delivered, committed ones only.

        Read as a transaction of its own: the embedded store shows a transaction's writes before
        it commits, and the gate keeps every writer out meanwhile.
        """
        async def read(session: AsyncClientSession) -> list[dict[str, Any]]:
            cursor = self.events.find({}, session=session).sort("_id", 1).limit(limit)
            return await cursor.to_list(length=limit)

        return await self.database.in_transaction(read)

    async def delivered(self, ids: list[str]) -> None:
        # One equality per event: a range could take in an event committed meanwhile with an
        # earlier stamp, and the embedded store scans for `$in`.
        async def remove(session: AsyncClientSession) -> None:
            for event_id in ids:
                await self.events.delete_one({"_id": event_id}, session=session)

        await self.database.in_transaction(remove)

    async def hold_lease(self, owner: str, seconds: float, lease_id: str = LEASE_ID) -> bool:
        """Take or renew the dispatch lease (or another worker's, `lease_id`) for `seconds`; False
        while another live owner holds it.

        Times are epoch seconds and each change bumps `n`: the compare-and-set compares an integer,
        which every store compares exactly.
        """
        now = time.time()
        async with self.database.gate.read():
            lease = await self.leases.find_one({"_id": lease_id})
        if lease is not None and lease["owner"] != owner and lease["until"] > now:
            return False

        async def take(session: AsyncClientSession) -> bool:
            if lease is None:
                try:
                    await self.leases.insert_one({"_id": lease_id, "owner": owner, "until": now + seconds, "n": 0},
                                                 session=session)
                except DuplicateKeyError:
                    return False
                return True
            # Of two processes taking an expired lease, one wins.
            taken = await self.leases.update_one(
                {"_id": lease_id, "n": lease["n"]},
                {"$set": {"owner": owner, "until": now + seconds, "n": lease["n"] + 1}}, session=session)
            return taken.matched_count == 1

        return bool(await self.database.in_transaction(take))

    async def release(self, owner: str, lease_id: str = LEASE_ID) -> None:
        async def release(session: AsyncClientSession) -> None:
            await self.leases.update_one({"_id": lease_id, "owner": owner}, {"$set": {"until": 0.0}}, session=session)

        await self.database.in_transaction(release)
