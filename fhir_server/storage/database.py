"""The MongoDB connection, what the connected store can be trusted with, and its indexes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, PyMongoError
from pymongo.write_concern import WriteConcern

from fhir_server.search.lookup import LOOKUP
from fhir_server.storage.binaries import BLOBS
from fhir_server.storage.embedded import StoreUnavailable
from fhir_server.storage.gate import Gate
from fhir_server.storage.pending import PendingWrites

T = TypeVar("T")
HISTORY = "history"


@dataclass(frozen=True)
class StoreCapabilities:
    """What the connected store answers correctly; queries and indexes are planned from this."""

    embedded: bool
    # The embedded store returns no documents for equality on an indexed array field.
    index_arrays: bool
    # The embedded store's transactions roll back but do not hide uncommitted writes.
    isolated_transactions: bool
    # count_documents costs a full scan on the embedded store (about 500 ms at 20,000 documents).
    fast_count: bool


def capabilities_for(embedded: bool, hello: dict[str, Any]) -> StoreCapabilities:
    if embedded:
        return StoreCapabilities(embedded=True, index_arrays=False, isolated_transactions=False, fast_count=False)
    replicated = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    return StoreCapabilities(embedded=False, index_arrays=True, isolated_transactions=replicated, fast_count=True)


# The embedded store writes collection names into SQL unquoted, so a name that is an SQLite
# keyword (sqlite.org/lang_keywords.html) cannot be a collection there; of R4's resource types only
# `Group` is one. Every store gets the same names, so data moves between them unchanged.
RENAMED_COLLECTIONS = {"Group": "Group_"}


def collection_name(name: str) -> str:
    return RENAMED_COLLECTIONS.get(name, name)


def index_name(field: str) -> str:
    # The embedded store accepts only [A-Za-z0-9_] in index names; search codes contain '-' and '.'.
    return "i_" + "".join(c if c.isalnum() else "_" for c in field)


class Database:
    def __init__(self, url: str, name: str, *, embedded: bool) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=5000, tz_aware=True, uuidRepresentation="standard"
        )
        concern = WriteConcern(w=1, j=True) if embedded else WriteConcern(w="majority", j=True)
        self.db: AsyncDatabase[dict[str, Any]] = self.client.get_database(name, write_concern=concern)
        self.embedded = embedded
        self.capabilities = capabilities_for(embedded, {})
        self.gate = Gate(enabled=True)
        self.pending = PendingWrites()

    async def connect(self) -> None:
        try:
            hello = await self.client.admin.command("hello")
        except PyMongoError as exc:
            raise StoreUnavailable(f"cannot reach MongoDB: {exc.__class__.__name__}: {exc}") from exc
        self.capabilities = capabilities_for(self.embedded, hello)
        self.gate = Gate(enabled=not self.capabilities.isolated_transactions)

    async def close(self) -> None:
        await self.client.close()

    def collection(self, name: str) -> Any:
        return self.db[collection_name(name)]

    async def ensure_collections(self, names: list[str]) -> None:
        # Collections are created up front: creating one inside a transaction that aborts leaves
        # the embedded store without the table.
        existing = set(await self.db.list_collection_names())
        for name in [*map(collection_name, names), HISTORY, BLOBS, LOOKUP]:
            if name not in existing:
                try:
                    await self.db.create_collection(name)
                except CollectionInvalid:
                    pass

    async def ensure_indexes(self, name: str, scalar_fields: list[str], array_fields: list[str]) -> None:
        collection = self.collection(name)
        fields = ["sid", "ts", *scalar_fields]
        if self.capabilities.index_arrays:
            fields += array_fields
        for field in fields:
            await collection.create_index([(field, ASCENDING)], name=index_name(field))

    async def ensure_history_indexes(self) -> None:
        history = self.db[HISTORY]
        await history.create_index([("rid", ASCENDING)])
        await history.create_index([("ts", ASCENDING)])
        await history.create_index([("rt", ASCENDING)])

    async def in_transaction(
        self, work: Callable[[AsyncClientSession], Awaitable[T]], *, exclude_readers: bool = False
    ) -> T:
        """Run `work` in one store transaction: all of its writes land, or none do."""
        async def attempt(session: AsyncClientSession) -> T:
            # with_transaction may run an attempt again: each starts with no deferred writes.
            self.pending.start(session)
            result = await work(session)
            await self.pending.flush(self.db, session)
            return result

        async with self.gate.write(exclude_readers=exclude_readers):
            async with self.client.start_session() as session:
                try:
                    if self.capabilities.isolated_transactions:
                        return await session.with_transaction(attempt)
                    async with await session.start_transaction():
                        return await attempt(session)
                finally:
                    self.pending.discard(session)
