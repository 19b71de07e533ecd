"""The MongoDB connection, what the connected store can be trusted with, and its indexes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bson.binary import UUID_SUBTYPE, Binary
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, ConnectionFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from fhir_server.observability import metrics
from fhir_server.observability.metrics import StoreTiming
from fhir_server.search.lookup import LOOKUP
from fhir_server.storage.binaries import BLOBS
from fhir_server.storage.command_log import listeners as command_log_listeners
from fhir_server.storage.claims import CLAIMS
from fhir_server.storage.embedded import StoreUnavailable, serves_data_dir
from fhir_server.storage.gate import Gate
from fhir_server.storage.group_commit import Failed, GroupCommit
from fhir_server.storage.pending import PendingWrites

T = TypeVar("T")
log = logging.getLogger(__name__)
HISTORY = "history"
# The transactional outbox (fhir_server.storage.outbox) and the dispatcher's lease.
OUTBOX = "outbox"
LEASES = "leases"
# Patient e-mail notifications (fhir_server.events.notifications): messages to send, messages
# sent (so a message is never queued twice), and where each periodic job got to.
MAIL_QUEUE = "mail_queue"
MAIL_SENT = "mail_sent"
JOB_MARKS = "job_marks"
# The collections every start creates besides one per resource type.
SERVER_COLLECTIONS = (HISTORY, BLOBS, LOOKUP, CLAIMS, OUTBOX, LEASES, MAIL_QUEUE, MAIL_SENT, JOB_MARKS)
HISTORY_INDEXES = tuple(IndexModel([(field, ASCENDING)]) for field in ("rid", "ts", "rt", "pat"))


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


# The least any store may do: also what is assumed until the store has said what it is.
EMBEDDED_STORE = StoreCapabilities(embedded=True, index_arrays=False, isolated_transactions=False, fast_count=False)
# What nx-27017 answers to buildInfo (its serverStatus document); MongoDB's buildInfo has no
# `process` field (its serverStatus says "mongod" or "mongos").
EMBEDDED_PROCESS = "nx_27017"


def capabilities_for(hello: dict[str, Any], build_info: dict[str, Any]) -> StoreCapabilities:
    """Read from what the store says it is, whoever started it."""
    if build_info.get("process") == EMBEDDED_PROCESS:
        return EMBEDDED_STORE
    replicated = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    return StoreCapabilities(embedded=False, index_arrays=True, isolated_transactions=replicated, fast_count=True)


def check_store(hello: dict[str, Any], build_info: dict[str, Any], data_dir: Path | None) -> StoreCapabilities:
    """The store's capabilities, or a refusal when it is an embedded store this process may not use.

    The embedded store isolates nothing between processes: only processes that share its data
    dir, and with it the gate's file locks, may use it. Any other would write around the gate
    and, seeing no capability limits of its own, index array fields the store then answers wrongly.
    """
    capabilities = capabilities_for(hello, build_info)
    if not capabilities.embedded:
        return capabilities
    pid = build_info.get("pid")
    if data_dir is None or not isinstance(pid, int) or not serves_data_dir(pid, data_dir):
        where = "" if data_dir is None else f" {data_dir.resolve()}"
        raise StoreUnavailable(
            f"MONGODB_URL reaches the embedded store of another data dir (nx-27017, PID {pid}; this process has "
            f"--data-dir{where}): only the server that started it and processes given its data dir may use it; "
            "point MONGODB_URL at MongoDB"
        )
    return capabilities


# The embedded store writes collection names into SQL unquoted, so a name that is an SQLite
# keyword (sqlite.org/lang_keywords.html) cannot be a collection there; of R4's resource types only
# `Group` is one. Every store gets the same names, so data moves between them unchanged.
RENAMED_COLLECTIONS = {"Group": "Group_"}


@contextmanager
def open_transaction(gate: Gate | None, session: AsyncClientSession) -> Iterator[None]:
    """Around a store transaction under `gate`'s writer lock: marked open there until it ended
    (storage/gate.py). After a lost connection or a cancellation its abort may not have reached the
    store, so the mark stays for the next writer or reader to end it."""
    if gate is None:
        yield
        return
    with gate.transaction(bytes(session.session_id["id"]).hex()) as opened:
        try:
            yield
        except BaseException as exc:
            if _may_be_left_open(exc):
                opened.keep()
            raise


def _may_be_left_open(error: BaseException) -> bool:
    """A cancellation, or a lost connection anywhere in the error's chain."""
    if not isinstance(error, Exception):
        return True
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        if isinstance(found, ConnectionFailure):
            return True
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return False


def collection_name(name: str) -> str:
    return RENAMED_COLLECTIONS.get(name, name)


def index_name(field: str) -> str:
    # The embedded store accepts only [A-Za-z0-9_] in index names; search codes contain '-' and '.'.
    return "i_" + "".join(c if c.isalnum() else "_" for c in field)


def search_indexes(scalar_fields: list[str], array_fields: list[str],
                   capabilities: StoreCapabilities) -> list[IndexModel]:
    """A resource type's indexes: its search fields, on a store that indexes arrays its array fields too."""
    # acc.dep: an organisation's own deposits; acc.ctx: the Binaries of a resource (docs/ACCESS-RULES.md).
    fields = ["sid", "ts", "pat", "acc.dep", "acc.ctx", *scalar_fields]
    if capabilities.index_arrays:
        fields += array_fields
    return [IndexModel([(field, ASCENDING)], name=index_name(field)) for field in fields]


async def create_indexes(collection: Any, indexes: Iterable[IndexModel]) -> None:
    """One createIndexes command per index: what the store already has is left as it is."""
    for index in indexes:
        await collection.create_indexes([index])


class Database:
    def __init__(self, url: str, name: str, *, data_dir: Path | None, command_log: Path | None = None) -> None:
        """`data_dir` is the data dir this process shares with an embedded store, if it uses one;
        `command_log` the file every command is recorded to (FHIR_COMMAND_LOG), None: not recorded."""
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=5000, tz_aware=True, uuidRepresentation="standard",
            event_listeners=[*command_log_listeners(command_log), StoreTiming()],
        )
        self.name = name
        self.data_dir = data_dir
        self.db: AsyncDatabase[dict[str, Any]] = self.client.get_database(name)
        self._collections: dict[str, Any] = {}
        self.capabilities = EMBEDDED_STORE
        self.gate = Gate(enabled=True)
        self.pending = PendingWrites()
        self.groups = GroupCommit(self.run_group)

    async def connect(self) -> None:
        """Ask the store what it is; refuse it before anything is written if this process may not use it."""
        try:
            hello = await self.client.admin.command("hello")
            build_info = await self.client.admin.command("buildInfo")
        except PyMongoError as exc:
            raise StoreUnavailable(f"cannot reach MongoDB: {exc.__class__.__name__}: {exc}") from exc
        self.capabilities = check_store(hello, build_info, self.data_dir)
        embedded = self.capabilities.embedded
        concern = WriteConcern(w=1, j=True) if embedded else WriteConcern(w="majority", j=True)
        self.db = self.client.get_database(self.name, write_concern=concern)
        self._collections = {}
        # The file locks live in the data dir, so they bind exactly the processes that share it.
        self.gate = Gate(enabled=not self.capabilities.isolated_transactions,
                         lock_dir=self.data_dir if embedded else None, end_session=self.end_session)

    async def end_session(self, session_id: str) -> None:
        """End the store session `session_id` (hex), which rolls back the transaction it left open:
        a process died in it, holding the writer lock (storage/gate.py)."""
        log.warning("rolling back a store transaction left open by a process that ended in it, or that lost "
                    "its connection to the store in it (session %s)", session_id)
        await self.client.admin.command({"endSessions": [{"id": Binary(bytes.fromhex(session_id), UUID_SUBTYPE)}]})
        observed = metrics.current()
        if observed is not None:
            observed.abandoned_transactions.inc()

    async def close(self) -> None:
        await self.groups.close()
        await self.client.close()

    def collection(self, name: str) -> Any:
        # Kept: a PyMongo collection object took 4 us to make, several times a request (issue 18).
        found = self._collections.get(name)
        if found is None:
            found = self._collections[name] = self.db[collection_name(name)]
        return found

    async def ensure_collections(self, names: list[str]) -> None:
        # Collections are created up front: creating one inside a transaction that aborts leaves
        # the embedded store without the table.
        existing = set(await self.db.list_collection_names())
        for name in [*map(collection_name, names), *SERVER_COLLECTIONS]:
            if name not in existing:
                try:
                    await self.db.create_collection(name)
                except CollectionInvalid:
                    pass

    async def ensure_indexes(self, name: str, scalar_fields: list[str], array_fields: list[str]) -> None:
        await create_indexes(self.collection(name), search_indexes(scalar_fields, array_fields, self.capabilities))

    async def ensure_history_indexes(self) -> None:
        await create_indexes(self.db[HISTORY], HISTORY_INDEXES)

    async def in_transaction(
        self, work: Callable[[AsyncClientSession], Awaitable[T]], *, exclude_readers: bool = False
    ) -> T:
        """Run `work` in one store transaction: all of its writes land, or none do. On the embedded
        store, transactions that wait for the writer meanwhile share one store transaction
        (storage/group_commit.py); each still lands whole or not at all."""
        if self.gate.enabled:
            return await self.groups.run(work, exclude_readers)

        async def attempt(session: AsyncClientSession) -> T:
            # with_transaction may run an attempt again: each starts with no deferred writes.
            self.pending.start(session)
            result = await work(session)
            await self.pending.flush(self.db, session)
            return result

        async with self.client.start_session() as session:
            try:
                return await session.with_transaction(attempt)
            finally:
                self.pending.discard(session)

    async def run_group(self, works: list[Callable[[AsyncClientSession], Awaitable[Any]]],
                        exclude_readers: bool) -> list[Any]:
        """`works` one after the other in one store transaction, holding the gate's writer lock: their
        results once it committed; group_commit.Failed (and the transaction aborted) when one raised."""
        async with self.gate.write(exclude_readers=exclude_readers):
            async with self.client.start_session() as session:
                self.pending.start(session)
                try:
                    with open_transaction(self.gate, session):
                        async with await session.start_transaction():
                            results = []
                            for index, work in enumerate(works):
                                try:
                                    results.append(await work(session))
                                except Exception as exc:
                                    raise Failed(index, exc) from exc
                            await self.pending.flush(self.db, session)
                    return results
                finally:
                    self.pending.discard(session)
