"""The routing table of the types sharded by patient (`ids`, policies/sharding.json): `Type/id` ->
`pat`, the patient whose shard holds the resource.

A collection sharded by `{pat, _id}` answers a query naming only `_id` by asking every shard, so a
read, vread, update, delete or instance history by id first asks this table (sharded by `_id`, one
targeted round trip) and then names both keys. Its unique `_id` also keeps an id unique across
shards, which the type's own collection cannot once its documents are spread by patient. An entry
is written in the transaction that creates the resource, repointed when the resource moves to
another patient, and kept when it is deleted (a deleted resource answers 410 and can be created
again); only the opposition purge, which removes the documents themselves, removes entries.
Resources of the other types stay in unsharded collections and are read by `_id` alone.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError

from fhir_server.search.lookup import LOOKUP
from fhir_server.storage.database import JOB_MARKS, Database
from fhir_server.storage.sharding import IDS, by_patient

Session = AsyncClientSession | None
# The `job_marks` document saying every stored resource of a patient type has its entry (and
# every lookup entry its patient), so start-ups after the first skip the pass.
BACKFILLED = "ids-backfilled"
BATCH = 500
DUPLICATE_KEY = 11000
# Routes this process remembers (issue 18: the lookup was half of a read's own work). About 150
# bytes each; the oldest is forgotten first.
REMEMBERED_ROUTES = 50_000
# `remembered` when the route is not in memory (a remembered route's patient may be None).
UNKNOWN = object()


def entry_id(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}/{resource_id}"


class IdsTable:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.collection = database.db[IDS]
        # `Type/id` -> `pat` as last read from the table, for reads outside transactions only. A
        # route can go stale (another process moves or purges the resource), so a read served by
        # a remembered route names the patient in its query and, finding nothing, asks the table
        # again (fhir_server.storage.repository.Repository.find_current): a stale route costs a
        # round trip, never a wrong answer.
        self._remembered: dict[str, str | None] = {}

    def remembered(self, resource_type: str, resource_id: str) -> Any:
        """The remembered `pat` of a resource, or UNKNOWN."""
        return self._remembered.get(entry_id(resource_type, resource_id), UNKNOWN)

    def remember(self, resource_type: str, resource_id: str, patient: str | None) -> None:
        if len(self._remembered) >= REMEMBERED_ROUTES:
            del self._remembered[next(iter(self._remembered))]
        self._remembered[entry_id(resource_type, resource_id)] = patient

    def forget(self, resource_type: str, resource_ids: list[str]) -> None:
        for resource_id in resource_ids:
            self._remembered.pop(entry_id(resource_type, resource_id), None)

    async def route(self, resource_type: str, resource_id: str, session: Session) -> tuple[bool, str | None]:
        """(whether the resource was ever stored, its `pat`), one targeted round trip."""
        found = await self.collection.find_one({"_id": entry_id(resource_type, resource_id)}, {"pat": 1},
                                               session=session)
        return (found is not None, found.get("pat") if found else None)

    async def patients(self, resource_type: str, resource_ids: list[str], session: Session) -> dict[str, str | None]:
        """Id -> `pat` of those of `resource_ids` stored."""
        keys = [entry_id(resource_type, i) for i in dict.fromkeys(resource_ids)]
        if not keys:
            return {}
        query = {"_id": keys[0]} if len(keys) == 1 else {"_id": {"$in": keys}}
        docs = await self.collection.find(query, {"pat": 1}, session=session).to_list(None)
        return {d["_id"].split("/", 1)[1]: d.get("pat") for d in docs}

    @staticmethod
    def document(resource_type: str, resource_id: str, patient: str | None) -> dict[str, Any]:
        """A new resource's entry, inserted with its transaction's other deferred writes
        (Repository._write): its unique `_id` refuses an id taken on any shard."""
        return {"_id": entry_id(resource_type, resource_id), "pat": patient}

    async def repoint(self, resource_type: str, resource_id: str, patient: str | None, session: Session) -> None:
        self.forget(resource_type, [resource_id])
        # An upsert, so a start-up backfill racing this write cannot leave the old patient behind.
        await self.collection.update_one({"_id": entry_id(resource_type, resource_id)}, {"$set": {"pat": patient}},
                                         upsert=True, session=session)

    async def remove(self, resource_type: str, resource_ids: list[str], session: Session) -> None:
        self.forget(resource_type, resource_ids)
        for start in range(0, len(resource_ids), BATCH):
            keys = [entry_id(resource_type, i) for i in resource_ids[start:start + BATCH]]
            await self.collection.delete_many({"_id": {"$in": keys}}, session=session)

    async def backfill(self, resource_types: set[str]) -> None:
        """Give every stored resource of a patient type its entry, and every lookup entry its
        patient (`p`), once per store: data written before the table existed is then routed like
        the rest, so no read falls back to asking every shard. Idempotent, so processes starting
        together may both run it; a write meanwhile wins over it (its entries exist, or repoint upserts)."""
        marks = self.database.collection(JOB_MARKS)
        if await marks.find_one({"_id": BACKFILLED}) is not None:
            return
        # Written outside any transaction: the embedded store's writers take turns through the gate.
        async with self.database.gate.write(exclude_readers=False):
            await self._backfill(resource_types)
            # Within the gate too: on the embedded store a write outside it lands in whatever
            # transaction another worker has open, and vanishes if that one aborts.
            await marks.update_one({"_id": BACKFILLED}, {"$set": {"done": True}}, upsert=True)

    async def _backfill(self, resource_types: set[str]) -> None:
        patients: dict[str, str | None] = {}
        for rtype in sorted(t for t in resource_types if by_patient(t)):
            docs = await self.database.collection(rtype).find({}, {"pat": 1}).to_list(None)
            for start in range(0, len(docs), BATCH):
                batch = [self.document(rtype, d["_id"], d.get("pat")) for d in docs[start:start + BATCH]]
                known = {d["_id"] for d in await self.collection.find(
                    {"_id": {"$in": [b["_id"] for b in batch]}}, {"_id": 1}).to_list(None)}
                await self._insert_missing([b for b in batch if b["_id"] not in known])
            patients.update({entry_id(rtype, d["_id"]): d.get("pat") for d in docs})
        await self._backfill_lookup(patients)

    async def _insert_missing(self, documents: list[dict[str, Any]]) -> None:
        if not documents:
            return
        try:
            await self.collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def _backfill_lookup(self, patients: dict[str, str | None]) -> None:
        lookup = self.database.db[LOOKUP]
        by_patient_value: dict[str | None, list[str]] = {}
        for doc in await lookup.find({"p": {"$exists": False}}, {"k": 1, "r": 1}).to_list(None):
            # `k` is `Type|code|token`, `r` the resource id.
            patient = patients.get(entry_id(doc["k"].split("|", 1)[0], doc["r"]))
            by_patient_value.setdefault(patient, []).append(doc["_id"])
        for patient, keys in by_patient_value.items():
            for start in range(0, len(keys), BATCH):
                # Only entries still without `p`: one a write added meanwhile keeps its own.
                await lookup.update_many({"_id": {"$in": keys[start:start + BATCH]}, "p": {"$exists": False}},
                                         {"$set": {"p": patient}})
