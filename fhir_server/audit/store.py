"""The audit store: AuditEvents in their own collection, apart from the clinical data.

`audit_events` lives in the database FHIR_AUDIT_DATABASE names on the same MongoDB, by default the
clinical database's name with `_audit` appended: no clinical collection or database holds it, so no
clinical purge (fhir_server.access.opposition) reaches it, and on the embedded store it is a file of
its own, so audit writes never wait on the clinical writers' gate (a long transaction, another
process writing) and reads keep flowing. Nothing in this module updates or deletes: the trail is
append-only.

Each document is the AuditEvent (`res`, its JSON as bytes) with scalar keys the trail is read by,
all top-level equalities both stores index: `pat` (the patient), `who` (the requesting agent), `cid`
(the client), `ts` (recorded, sortable). Nothing queries inside an event, and the embedded store
takes a document of bytes for less than half the CPU of the same event as nested fields (0.13
against 0.28 ms, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pymongo import ASCENDING, AsyncMongoClient, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, PyMongoError

from fhir_server.storage.database import Database, create_indexes, index_name, open_transaction
from fhir_server.storage.gate import Gate

log = logging.getLogger("fhir_server.audit")
COLLECTION = "audit_events"
# Under the data dir: the file locks that serialise the embedded store's audit transactions across
# the processes of one data dir (`serve --workers`), apart from the clinical writers' gate.
AUDIT_LOCKS = "audit-gate"
INDEXES = tuple(IndexModel([(field, ASCENDING)], name=index_name(field)) for field in ("ts", "pat", "who", "cid"))


def audit_database_name(clinical: str, configured: str | None) -> str:
    """The audit database beside the clinical database `clinical`: `configured` (FHIR_AUDIT_DATABASE), else `clinical` + `_audit`."""
    return configured or f"{clinical}_audit"


class AuditUnavailable(Exception):
    """The audit store did not take the events: the requests waiting on them must fail."""


class AuditStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: AsyncDatabase[dict[str, Any]], *, embedded: bool,
                 gate: Gate | None) -> None:
        """`gate`: the clinical writers' gate when the audit shares their database on a store that needs one."""
        self.client = client
        self.db = db
        self.events = db[COLLECTION]
        self.embedded = embedded
        self.gate = gate
        self._ready = False

    @classmethod
    def beside(cls, database: Database, name: str | None) -> AuditStore:
        """The audit store of a connected clinical `database`: in the database `name` of the same
        store (None: the clinical database's name + `_audit`)."""
        db = database.client.get_database(audit_database_name(database.name, name),
                                          write_concern=database.db.write_concern)
        # The gate serialises writers of the embedded store's database file; another database has its own.
        # Within a process one batch is written at a time (AuditWriter); other processes of the data
        # dir write theirs too, and the embedded store fails two transactions interleaved on one file
        # ("no such savepoint"), so theirs take turns through file locks of the audit's own.
        if db.name == database.db.name:
            gate: Gate | None = database.gate
        elif database.gate.enabled and database.data_dir is not None and database.capabilities.embedded:
            gate = Gate(enabled=True, lock_dir=database.data_dir / AUDIT_LOCKS, end_session=database.end_session)
        else:
            gate = None
        return cls(database.client, db, embedded=database.capabilities.embedded, gate=gate)

    async def ensure(self) -> None:
        """The collection and its indexes; an unreachable or refusing store is reported at the next
        write instead of stopping the server: every audited request then answers 503."""
        try:
            await self._prepare()
        except PyMongoError as exc:
            log.error("audit store not ready (audited requests answer 503 until it is): %s", exc)

    async def _prepare(self) -> None:
        if self._ready:
            return
        if COLLECTION not in await self.db.list_collection_names():
            try:
                await self.db.create_collection(COLLECTION)
            except CollectionInvalid:
                pass
        await create_indexes(self.events, INDEXES)
        self._ready = True

    async def insert(self, documents: list[dict[str, Any]]) -> None:
        """All of `documents` durably stored (the database's journaled write concern), or AuditUnavailable."""
        try:
            await self._prepare()
            stored = [{**document, "res": orjson.dumps(document["res"])} for document in documents]
            if self.gate is not None:
                async with self.gate.write(exclude_readers=False):
                    await self._insert(stored)
            else:
                await self._insert(stored)
        except PyMongoError as exc:
            raise AuditUnavailable(f"{exc.__class__.__name__}: {exc}") from exc

    async def _insert(self, documents: list[dict[str, Any]]) -> None:
        if not self.embedded or len(documents) == 1:
            # One journal commit for the batch: MongoDB's journal groups the writes of one insert_many.
            # A batch of one (requests one at a time) is one journaled insert on either store: a
            # transaction around it would only add its commit's round trip.
            await self.events.insert_many(documents, ordered=False)
            return
        # The embedded store commits (and syncs) each document of a plain insert_many on its own:
        # 300 documents/s whatever the batch. One transaction commits the batch once: 2,400/s at 16,
        # 6,000/s at 64 (measured on 2 shared cores, docs/PERFORMANCE.md).
        async with self.client.start_session() as session:
            with open_transaction(self.gate, session):
                async with await session.start_transaction(write_concern=self.events.write_concern):
                    await self.events.insert_many(documents, ordered=False, session=session)

    async def find(self, query: dict[str, Any], skip: int, limit: int) -> list[dict[str, Any]]:
        cursor = self.events.find(query, {"res": 1}).sort("ts", DESCENDING).skip(skip).limit(limit)
        return [orjson.loads(doc["res"]) for doc in await cursor.to_list(length=limit)]
