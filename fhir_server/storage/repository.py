"""The one access path to stored resources: every read and write of the server passes here,
and every public method names its caller (fhir_server.security.callers).

Reads (read, vread, history, search with its counts, pages, includes, chains and `_has`,
conditional matching) run through a `Reader` for the caller, whose `scoped` is the one place the
search-filter hook adds its conditions to the store query. Writes check the resource through the
before-write hook (`prepare`, where validation is registered), then run in one store transaction
each: current document, history entry and, while an after-commit hook is registered, outbox
event (plus whatever the write rules add), so a version and its event are either fully there or
not at all. Every document carries `pat`, the
patient it belongs to (fhir_server.storage.patient_key).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from fhir_server.errors import FhirError, gone, not_found
from fhir_server.file_signatures import check_signature
from fhir_server.operations.patch import apply_patch
from fhir_server.search.filters.combine import FilterBuilder
from fhir_server.search.lookup import LOOKUP, LookupTable, keys_of
from fhir_server.search.named_patients import named_patients
from fhir_server.security.callers import Caller
from fhir_server.storage import binaries, claims, outbox
from fhir_server.facilities import Remembered
from fhir_server.storage.database import HISTORY, Database, collection_name
from fhir_server.storage.hooks import Hooks, RecordWriteCheck, ScopeFilter
from fhir_server.storage.known import RECORD_TYPES, Known, KnownBySession
from fhir_server.storage.patient_key import patient_of
from fhir_server.storage.routing import DUPLICATE_KEY, UNKNOWN, IdsTable
from fhir_server.storage.sharding import IDS, by_patient
from fhir_server.storage.documents import (
    Stored,
    current_document,
    from_current,
    from_history,
    history_document,
)
from fhir_server.timefmt import now_instant

if TYPE_CHECKING:
    from fhir_server.search.engine import SearchEngine, SearchResult
    from fhir_server.search.request import SearchRequest

Session = AsyncClientSession | None
# What goes into a `write_many` transaction beside the resources, given their results by index.
Within = Callable[[AsyncClientSession | None, dict[int, "WriteResult | FhirError"]], Awaitable[None]]
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
SERVER_META = ("versionId", "lastUpdated")
# Deferred writes nothing in a transaction reads back: `settle` leaves them for the commit.
UNREAD = frozenset({claims.CLAIMS})
# A current document as `from_current` reads it: without its search index values.
CURRENT_PROJECTION = {"ix": 0, "sk": 0}
# Ids per `$in` of `look_ahead`: on a cluster, a short `$in` on the shard key reaches a few shards
# (the sharding pins' limit, tests/sharding/pinning.py), not all of them.
SHORT_IN = 20


class VersionConflict(Exception):
    """Another writer got there first; the write is retried on fresh data."""


@dataclass
class HistoryEntry:
    stored: Stored
    method: str
    key: str


@dataclass
class WriteResult:
    stored: Stored
    created: bool = False
    changed: bool = True


Indexer = Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]
# The store indexes of a type: (fields holding one value, fields holding arrays).
IndexFields = Callable[[str], tuple[list[str], list[str]]]
WriteRule = Callable[["Repository", Session, Caller, Stored], Awaitable[None]]
# Raises FhirError when a patch changes what the type does not let a patch change.
PatchRule = Callable[[dict[str, Any], dict[str, Any]], None]


def check_id(resource_id: str) -> str:
    if not ID_PATTERN.match(resource_id):
        raise FhirError(400, "value", f"'{resource_id}' is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})", ["id"])
    return resource_id


def _content(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    """The resource without what the server sets, to recognise a no-op update."""
    if resource is None:
        return None
    out = dict(resource)
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in SERVER_META}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    out.pop("data", None)
    return out


# The types whose resources are seen as another resource is (`_security_context`).
FOLLOWERS = ("Binary", "List")


def _security_context(resource: dict[str, Any] | None) -> str | None:
    """The `Type/id` a resource is seen as: a Binary's `securityContext` (FHIR R4 Binary: "a proxy
    of the security sensitivity"), and the one document of a List holding exactly one (an ITI-65
    submission set), so neither tells what its document hides."""
    if resource is None:
        return None
    if resource.get("resourceType") == "Binary":
        reference = (resource.get("securityContext") or {}).get("reference")
    elif resource.get("resourceType") == "List":
        items = [(e.get("item") or {}).get("reference") for e in resource.get("entry") or [] if isinstance(e, dict)]
        reference = items[0] if len(items) == 1 and isinstance(items[0], str) \
            and items[0].startswith("DocumentReference/") else None
    else:
        return None
    if not isinstance(reference, str) or reference.count("/") != 1:
        return None
    rtype, rid = reference.split("/")
    return reference if rtype not in FOLLOWERS and ID_PATTERN.match(rid) and rtype[:1].isupper() and rtype.isalnum() else None


def _shard_key(resource_type: str, patient: str | None) -> dict[str, Any]:
    """The patient part of the shard key of a type's collection (policies/sharding.json), if it has one."""
    return {"pat": patient} if by_patient(resource_type) else {}


def _pinned(where: dict[str, Any]) -> dict[str, Any]:
    """The patient condition of a resource's `route`, for its history documents (they share its `pat`)."""
    return {"pat": where["pat"]} if "pat" in where else {}


class Reader:
    """The store queries of one caller (the search engine plans, this runs), or with `caller` None
    the server's own look at the whole store (what a write replaces, uniqueness checks)."""

    def __init__(self, repository: Repository, caller: Caller | None, session: Session) -> None:
        self.repository = repository
        self.caller = caller
        self.session = session
        self.fast_count = repository.database.capabilities.fast_count
        # Set by `open`: the record-open hooks' filters for this interaction's queries.
        self.filters: list[ScopeFilter] | None = None

    async def open(self, patients: list[str] | None) -> Reader:
        """Open the records (patient ids) this interaction names, None when it names none: the
        one place the record-open hook is called; it may refuse (403). Queries of a reader never
        opened open it with None first, so no query escapes the record rules."""
        if self.caller is None:
            self.filters = []
        else:
            self.filters = await self.repository.hooks.open(self.caller, self, patients)
        return self

    async def open_for_identity(self) -> Reader:
        """Only the search filters, no record's rules: the server matching an identity for a deposit."""
        self.filters = []
        return self

    async def limited(self, resource_type: str) -> bool:
        """Whether the caller's queries of this type carry any condition."""
        if self.caller is None:
            return False
        if self.filters is None:
            await self.open(None)
        return bool(self._conditions(resource_type))

    def _conditions(self, resource_type: str | None) -> list[dict[str, Any]]:
        assert self.caller is not None and self.filters is not None
        conditions = self.repository.hooks.condition(self.caller, resource_type)
        for scope_filter in self.filters:
            condition = scope_filter(resource_type)
            if condition:
                conditions.append(condition)
        return conditions

    def scoped(self, resource_type: str | None, query: dict[str, Any]) -> dict[str, Any]:
        """`query` with the caller's search-filter conditions and the opened records' filters: the
        one place that hook is called."""
        if self.caller is None:
            return query
        if self.filters is None:
            raise AssertionError("a caller's query ran before its interaction opened the records it reads")
        conditions = self._conditions(resource_type)
        if not conditions:
            return query
        builder = FilterBuilder()
        for condition in [query, *conditions]:
            builder.add(condition)
        return builder.build()

    async def find(self, resource_type: str, query: dict[str, Any], projection: dict[str, Any] | None = None, *,
                   sort: list[tuple[str, int]] | None = None, limit: int = 0) -> list[dict[str, Any]]:
        return await self._find(resource_type, resource_type, query, projection, sort, limit)

    async def find_history(self, resource_type: str | None, query: dict[str, Any], *,
                           sort: list[tuple[str, int]] | None = None, limit: int = 0) -> list[dict[str, Any]]:
        """History entries; `resource_type` None for the whole server's."""
        return await self._find(HISTORY, resource_type, query, None, sort, limit)

    async def _find(self, collection: str, resource_type: str | None, query: dict[str, Any],
                    projection: dict[str, Any] | None, sort: list[tuple[str, int]] | None, limit: int) -> list[dict[str, Any]]:
        if self.filters is None:
            await self.open(None)
        scoped = self.scoped(resource_type, query)
        # While `write_many` checks its resources nothing is written yet: the same question gets the same answer.
        memo = self.repository.read_memo.get(id(self.session)) if self.session is not None else None
        key = repr((collection, scoped, projection, sort, limit)) if memo is not None else ""
        if memo is not None and key in memo:
            return list(memo[key])
        await self.repository.settle(self.session, collection)
        cursor = self.repository.database.collection(collection).find(scoped, projection, session=self.session)
        if sort:
            cursor = cursor.sort(sort)
        if limit:
            cursor = cursor.limit(limit)
        async with self.repository._reading(self.session):
            docs = await cursor.to_list(length=limit or None)
        if memo is not None:
            memo[key] = docs
        return list(docs)

    async def count(self, resource_type: str, query: dict[str, Any]) -> int:
        if self.filters is None:
            await self.open(None)
        await self.repository.settle(self.session, resource_type)
        async with self.repository._reading(self.session):
            return await self.repository.collection(resource_type).count_documents(
                self.scoped(resource_type, query), session=self.session)

    async def routes(self, resource_type: str, ids: list[str]) -> dict[str, str | None]:
        """Id -> `pat` of the stored resources of a type sharded by patient (the `ids` table)."""
        await self.repository.settle(self.session, IDS)
        async with self.repository._reading(self.session):
            return await self.repository.ids_table.patients(resource_type, ids, self.session)

    async def lookup_ids(self, resource_type: str, code: str, token_keys: list[str]) -> list[tuple[str, str | None]]:
        # Candidates only: they become an `_id` condition of a scoped query. The entries this
        # transaction has yet to send are looked at here rather than sent first.
        pending = self.repository.database.pending.overlay(self.session, LOOKUP)
        if pending is None:
            await self.repository.settle(self.session, LOOKUP)
        async with self.repository._reading(self.session):
            return await self.repository.lookup.ids(resource_type, code, token_keys, self.session, pending)


class Repository:
    def __init__(
        self,
        database: Database,
        resource_types: set[str],
        hooks: Hooks,
        index: Indexer,
        index_fields: IndexFields,
        gridfs_threshold: int,
        search_engine: SearchEngine,
    ) -> None:
        self.database = database
        self.resource_types = resource_types
        self.hooks = hooks
        self.index = index
        self.index_fields = index_fields
        self._indexed: set[str] = set()
        self.blobs = binaries.BlobStore(database, gridfs_threshold)
        # The sending facilities the adapters found lately (fhir_server.facilities.Remembered).
        self.facilities = Remembered()
        self.lookup = LookupTable(database.db)
        self.ids_table = IdsTable(database)
        self.engine = search_engine
        self.write_rules: dict[str, list[WriteRule]] = {}
        self.patch_rules: dict[str, list[PatchRule]] = {}
        # Told after each commit that wrote outbox events (the dispatcher's wake-up).
        self.on_commit: list[Callable[[], None]] = []
        # Per session, the store reads of a `write_many` check phase (Reader._find).
        self.read_memo: dict[int, dict[str, list[dict[str, Any]]]] = {}
        # Per open transaction, what it wrote and the records it checked (fhir_server.storage.known).
        self.known = KnownBySession()

    def reader(self, caller: Caller | None, session: Session = None) -> Reader:
        """Queries for `caller`; None for the server's own checks, which see the whole store."""
        return Reader(self, caller, session)

    # ------------------------------------------------------------------ helpers
    def check_type(self, resource_type: str) -> None:
        if resource_type not in self.resource_types:
            raise FhirError(404, "not-supported", f"Resource type '{resource_type}' is not supported by this server")

    def collection(self, resource_type: str) -> Any:
        return self.database.collection(resource_type)

    async def ready(self, resource_types: Iterable[str]) -> None:
        """Create the search indexes of each type before its first write in this process.

        Every type's collection exists from start-up; its indexes wait until it is written to, so a
        start touches none of the 145 types, and they are made outside any transaction (the
        embedded store cannot create them inside one).
        """
        missing = sorted(t for t in set(resource_types) - self._indexed if t in self.resource_types)
        if not missing:
            return
        # As a writer: on the embedded store an index built while another request's transaction
        # is open is built inside it, and undone with it if it aborts.
        async with self.database.gate.write(exclude_readers=False):
            for rtype in missing:
                await self.database.ensure_indexes(rtype, *self.index_fields(rtype))
                self._indexed.add(rtype)

    def prepare(self, caller: Caller, resource: Any, resource_type: str | None = None) -> dict[str, Any]:
        """Check a caller's resource before any store work: shape, type, then the before-write
        hooks (validation among them). The one place the before-write hook is called."""
        if not isinstance(resource, dict):
            raise FhirError(400, "structure", "The body must be a JSON object holding a FHIR resource")
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            raise FhirError(400, "required", "resourceType is missing", ["resourceType"])
        if resource_type is not None and rtype != resource_type:
            raise FhirError(400, "invalid", f"The body is a {rtype}, the URL names {resource_type}", ["resourceType"])
        self.check_type(rtype)
        self.hooks.check_write(caller, resource)
        return resource

    def patched(self, caller: Caller, current: Stored, operations: Any) -> dict[str, Any]:
        """A JSON Patch or FHIRPath Patch applied to the current version, held to the type's patch
        rules, then validated."""
        before = current.resource or {}
        after = apply_patch(before, operations)
        for rule in self.patch_rules.get(current.resource_type, []):
            rule(before, after)
        return self.prepare(caller, after, current.resource_type)

    async def stash_binary(self, resource: dict[str, Any], raw: bytes | None, *,
                           keep: bool = True) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A Binary's bytes checked and given to the blob store, which writes them with the version
        (storage/binaries.py; `keep` False, a dry run: only checked)."""
        if resource.get("resourceType") != "Binary":
            return resource, None
        content = raw if raw is not None else binaries.decode_data(resource)
        check_signature(resource.get("contentType"), content[:16], "Binary.data")
        stripped = {k: v for k, v in resource.items() if k != "data"}
        blob = await self.blobs.stash(content) if keep else binaries.describe(content)
        return stripped, blob

    async def binary_content(self, stored: Stored) -> bytes:
        if stored.blob is None:
            return b""
        return await self.blobs.load(stored.blob)

    async def with_binary_data(self, stored: Stored) -> dict[str, Any]:
        """The Binary resource as FHIR JSON, its bytes back in `data`."""
        resource = dict(stored.resource or {})
        content = await self.binary_content(stored)
        if content:
            resource["data"] = base64.b64encode(content).decode("ascii")
        return resource

    # ------------------------------------------------------------------ reads
    async def find_current(self, caller: Caller | None, resource_type: str, resource_id: str,
                           session: Session = None) -> Stored | None:
        """The current document as `caller` may see it (deleted or not), or None."""
        projection = CURRENT_PROJECTION
        if not by_patient(resource_type):
            # An unsharded collection: one round trip reads the document and, with it, its record;
            # a second only when the caller's queries of the type carry conditions.
            await self.settle(session, resource_type)
            async with self._reading(session):
                doc = await self.collection(resource_type).find_one({"_id": resource_id}, projection, session=session)
            if doc is None:
                return None
            reader = await self._open_on(caller, doc.get("pat"), session)
            if not await reader.limited(resource_type):
                return from_current(resource_type, doc)
            docs = await reader.find(resource_type, {"_id": resource_id}, projection, limit=1)
            return from_current(resource_type, docs[0]) if docs else None
        reader, where, remembered = await self.opened_for(caller, resource_type, resource_id, session)
        if where is None:
            return None
        docs = await reader.find(resource_type, where, projection, limit=1)
        if not docs and remembered:
            # Moved or purged by another process since: the route is asked again.
            reader, where, _ = await self.opened_for(caller, resource_type, resource_id, session, remembered=False)
            if where is None:
                return None
            docs = await reader.find(resource_type, where, projection, limit=1)
        return from_current(resource_type, docs[0]) if docs else None

    async def route(self, resource_type: str, resource_id: str, session: Session,
                    remembered: bool = False) -> tuple[dict[str, Any] | None, bool]:
        """The condition naming one resource with its collection's shard key: `{_id, pat}` for a
        type sharded by patient, after one targeted round trip to `ids` (None: never stored),
        `{_id}` for the others; and whether it came from the routes this process remembers
        (`remembered`, outside transactions only: a write always asks the table)."""
        if not by_patient(resource_type):
            return {"_id": resource_id}, False
        if remembered and session is None:
            patient = self.ids_table.remembered(resource_type, resource_id)
            if patient is not UNKNOWN:
                return {"_id": resource_id, "pat": patient}, True
        await self.settle(session, IDS)
        async with self._reading(session):
            found, patient = await self.ids_table.route(resource_type, resource_id, session)
        if found and session is None:
            self.ids_table.remember(resource_type, resource_id, patient)
        return ({"_id": resource_id, "pat": patient} if found else None), False

    async def opened_for(self, caller: Caller | None, resource_type: str, resource_id: str, session: Session = None,
                         remembered: bool = True) -> tuple[Reader, dict[str, Any] | None, bool]:
        """A reader of `caller` opened on the record holding this resource (none if it is in no record
        or does not exist): reading one resource is reading its record; with the resource's
        condition (`route`), None when it was never stored, and whether the route was remembered
        (then a query that finds nothing is to be asked again with `remembered=False`)."""
        where, from_memory = await self.route(resource_type, resource_id, session, remembered)
        if where is not None and "pat" in where:
            try:
                return await self._open_on(caller, where["pat"], session), where, from_memory
            except FhirError:
                if not from_memory:
                    raise
                # Refused on the record the resource was in: it may have moved since.
                return await self.opened_for(caller, resource_type, resource_id, session, remembered=False)
        if caller is None or where is None:
            return await self._open_on(caller, None, session), where, from_memory
        await self.settle(session, resource_type)
        async with self._reading(session):
            found = await self.collection(resource_type).find_one(where, {"pat": 1}, session=session)
        return await self._open_on(caller, found.get("pat") if found else None, session), where, from_memory

    async def _open_on(self, caller: Caller | None, patient: str | None, session: Session) -> Reader:
        reader = self.reader(caller, session)
        if caller is None:
            return await reader.open(None)
        return await reader.open([patient] if patient else [])

    async def read(self, caller: Caller, resource_type: str, resource_id: str, session: Session = None) -> Stored:
        self.check_type(resource_type)
        stored = await self.find_current(caller, resource_type, resource_id, session)
        if stored is None:
            raise not_found(resource_type, resource_id)
        if stored.deleted:
            raise gone(resource_type, resource_id)
        return stored

    async def vread(self, caller: Caller, resource_type: str, resource_id: str, version: str) -> Stored:
        self.check_type(resource_type)
        if not version.isdigit():
            raise FhirError(404, "not-found", f"Version '{version}' of {resource_type}/{resource_id} is not known")
        reader, where, remembered = await self.opened_for(caller, resource_type, resource_id)
        query = {"rid": f"{resource_type}/{resource_id}", "vid": int(version)}
        if where is None:
            raise not_found(resource_type, resource_id)
        docs = await reader.find_history(resource_type, {**query, **_pinned(where)}, limit=1)
        if not docs and remembered:
            reader, where, _ = await self.opened_for(caller, resource_type, resource_id, remembered=False)
            if where is None:
                raise not_found(resource_type, resource_id)
            docs = await reader.find_history(resource_type, {**query, **_pinned(where)}, limit=1)
        if not docs:
            if await self.find_current(caller, resource_type, resource_id) is None:
                raise not_found(resource_type, resource_id)
            raise FhirError(404, "not-found", f"Version {version} of {resource_type}/{resource_id} is not known")
        doc = docs[0]
        stored = from_history(doc)
        if stored.deleted:
            raise FhirError(410, "deleted", f"Version {version} of {resource_type}/{resource_id} is a deletion")
        return stored

    def _reading(self, session: Session) -> Any:
        # Inside a transaction the writer already holds the gate.
        return nullcontext() if session is not None else self.database.gate.read()

    async def settle(self, session: Session, *names: str) -> None:
        """Send what the transaction of `session` deferred (fhir_server.storage.pending) to the
        collections named (resource types or collection names; none named: to every collection),
        before it reads or changes them by other means: it then sees its own writes there. Code
        reading collections directly inside a write's transaction calls this first."""
        if session is None:
            return
        pending = self.database.pending
        wanted = {collection_name(n) for n in names} if names else pending.collections(session) - UNREAD
        if pending.waiting(session, wanted):
            await pending.flush(self.database.db, session, wanted)

    async def history_page(self, caller: Caller, resource_type: str | None, query: dict[str, Any], count: int,
                           before: str | None, resource_id: str | None = None) -> list[HistoryEntry]:
        """Newest first; `before` is the key of the last entry of the previous page; `resource_id`
        for one resource's history (whose record is then the one opened)."""
        condition = dict(query)
        if before is not None:
            condition["_id"] = {"$lt": before}
        if resource_id is not None and resource_type is not None:
            # A page of one resource's history asks its route (a remembered one could be stale, and
            # an empty page would not tell).
            reader, where, _ = await self.opened_for(caller, resource_type, resource_id, remembered=False)
            if where is None:
                return []
            condition.update(_pinned(where))
        else:
            reader = await self.reader(caller).open(None)
        docs = await reader.find_history(resource_type, condition, sort=[("_id", -1)], limit=count + 1)
        return [HistoryEntry(from_history(d), d["method"], d["_id"]) for d in docs]

    # ------------------------------------------------------------------ writes
    async def create(
        self, caller: Caller, resource: dict[str, Any], *, if_none_exist: str | None = None, raw: bytes | None = None
    ) -> WriteResult:
        stripped, blob = await self.stash_binary(resource, raw)

        async def work(session: Session) -> WriteResult:
            return await self.create_in(session, caller, stripped, blob=blob, if_none_exist=if_none_exist)

        return await self.run(work, [resource["resourceType"]])

    async def update(
        self, caller: Caller, resource_type: str, resource_id: str, resource: dict[str, Any], *,
        if_match: int | None = None, raw: bytes | None = None, method: str = "PUT",
    ) -> WriteResult:
        """`method` is what history records: PUT, or PATCH for a patched resource."""
        stripped, blob = await self.stash_binary(resource, raw)

        async def work(session: Session) -> WriteResult:
            return await self.update_in(session, caller, resource_type, resource_id, stripped, blob=blob,
                                        if_match=if_match, method=method)

        return await self.run(work, [resource_type])

    async def conditional_update(
        self, caller: Caller, resource_type: str, criteria: list[tuple[str, str]], resource: dict[str, Any], *,
        if_match: int | None = None,
    ) -> WriteResult:
        stripped, blob = await self.stash_binary(resource, None)

        async def work(session: Session) -> WriteResult:
            return await self.conditional_update_in(session, caller, resource_type, criteria, stripped, blob=blob,
                                                    if_match=if_match)

        return await self.run(work, [resource_type])

    async def delete(self, caller: Caller, resource_type: str, resource_id: str) -> WriteResult | None:
        self.check_type(resource_type)
        return await self.run(lambda session: self.delete_in(session, caller, resource_type, resource_id), [resource_type])

    async def conditional_delete(self, caller: Caller, resource_type: str,
                                 criteria: list[tuple[str, str]]) -> WriteResult | None:
        self.check_type(resource_type)

        async def work(session: Session) -> WriteResult | None:
            return await self.conditional_delete_in(session, caller, resource_type, criteria)

        return await self.run(work, [resource_type])

    async def in_transaction(self, work: Callable[[Session], Awaitable[Any]], *, exclude_readers: bool = False) -> Any:
        """One store transaction; once committed, the outbox dispatcher is told."""
        routes: dict[tuple[str, str], str | None] = {}
        staged = [False]

        async def attempt(session: Session) -> Any:
            # Each attempt (the store may run one again) starts knowing nothing.
            known = self.known.start(session)
            try:
                done = await work(session)
                routes.clear()
                routes.update(known.routes)
                return done
            finally:
                staged[0] = known.staged
                self.known.discard(session)

        try:
            result = await self.database.in_transaction(attempt, exclude_readers=exclude_readers)
        except BulkWriteError as exc:
            # A new resource's insert, deferred to the end, met an id taken meanwhile (a concurrent
            # create): the conflict its insert raised when it came first, retried the same way.
            if staged[0] and _only_duplicates(exc):
                raise VersionConflict() from exc
            raise
        # Committed: the routes of what it wrote are what the `ids` table now says (a read right
        # after a write, as the CDA intake's answer, then asks the table nothing).
        for (resource_type, resource_id), patient in routes.items():
            self.ids_table.remember(resource_type, resource_id, patient)
        for listener in self.on_commit:
            listener()
        return result

    async def run(self, work: Callable[[Session], Awaitable[Any]], resource_types: Iterable[str] = (),
                  attempts: int = 5) -> Any:
        """`work` in one store transaction, again on fresh data while another writer got there first."""
        # Any write may bring a resource seen as the one written (_follow_context).
        await self.ready([*resource_types, *FOLLOWERS])
        for attempt in range(attempts):
            try:
                return await self.in_transaction(work)
            except VersionConflict:
                if attempt == attempts - 1:
                    raise FhirError(409, "conflict", "The resource was changed concurrently; retry the request")
        raise AssertionError("unreachable")

    async def current(self, resource_type: str, resource_id: str, session: Session) -> Stored | None:
        """The current version whoever may see it: what a write replaces, so identity never forks."""
        known = self.known.of(session)
        if known is None:
            return await self.find_current(None, resource_type, resource_id, session)
        key = (resource_type, resource_id)
        if (written := known.stored.get(key)) is not None:
            return written
        if key in known.current:
            return known.current[key]
        if resource_type == "Patient":
            # A Patient's `pat` is its own id (patient_key): its route needs no look at `ids`.
            docs = await self.reader(None, session).find("Patient", {"_id": resource_id, "pat": resource_id},
                                                        CURRENT_PROJECTION, limit=1)
            found = from_current("Patient", docs[0]) if docs else None
            if not docs:
                known.records.setdefault(resource_id, None)
            else:
                _remember(known, "Patient", docs[0])
        else:
            found = await self.find_current(None, resource_type, resource_id, session)
        known.current[key] = found
        return found

    async def look_ahead(self, session: Session, references: Iterable[tuple[str, str]], *, new: bool = False) -> None:
        """Learn, for the transaction of `session`, which of these resources (type, id) do not exist,
        in one query per collection (one of `ids` for the types sharded by patient, whose `$in` on
        `_id` both stores answer from the index), so writing them asks the store nothing more.
        `new`: ids this transaction has just made (uuid4), known absent without asking; should one
        be taken after all, its deferred insert fails at commit and the transaction runs again."""
        known = self.known.of(session)
        if known is None:
            return
        wanted = [r for r in dict.fromkeys(references) if r not in known.stored and r not in known.current]
        if new:
            known.current.update(dict.fromkeys(wanted))
            return
        by_type: dict[str, list[str]] = {}
        for rtype, rid in wanted:
            by_type.setdefault(rtype, []).append(rid)
        routed = [(t, i) for t, ids in by_type.items() if by_patient(t) for i in ids]
        keys = {IdsTable.document(t, i, None)["_id"]: (t, i) for t, i in routed}
        found = set(await self._by_ids(session, IDS, list(keys), {"_id": 1}))
        known.current.update({reference: None for key, reference in keys.items() if key not in found})
        for rtype, ids in by_type.items():
            if not by_patient(rtype):
                stored = await self._by_ids(session, collection_name(rtype), ids, CURRENT_PROJECTION)
                known.current.update({(rtype, i): from_current(rtype, stored[i]) if i in stored else None for i in ids})

    async def _by_ids(self, session: Session, collection: str, ids: list[str],
                      projection: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The documents of `collection` with these `_id`s, as this transaction would read them: those
        its pending writes name are answered from them (storage/pending.py: nothing is sent for
        them), the others in one `$in` on `_id` per few ids (which both stores answer from the index)."""
        pending = self.database.pending.overlay(session, collection)
        if pending is None:
            await self.settle(session, collection)
        found = {} if pending is None else {i: pending.inserted[i] for i in ids if i in pending.inserted}
        asked = [i for i in ids if pending is None or not pending.named(i)]
        for start in range(0, len(asked), SHORT_IN):
            batch = asked[start:start + SHORT_IN]
            query = {"_id": batch[0]} if len(batch) == 1 else {"_id": {"$in": batch}}
            async for doc in self.database.db[collection].find(query, projection, session=session):
                found[doc["_id"]] = doc
        return found

    # -- staged writes: run inside a store transaction (`session`), used by bundles too
    async def create_in(
        self, session: Session, caller: Caller, resource: dict[str, Any], *, blob: dict[str, Any] | None = None,
        if_none_exist: str | None = None, resource_id: str | None = None,
    ) -> WriteResult:
        rtype = resource["resourceType"]
        if if_none_exist:
            matches = await self.match(caller, rtype, if_none_exist, session, limit=2)
            if len(matches) > 1:
                raise FhirError(412, "duplicate", f"If-None-Exist '{if_none_exist}' matches more than one {rtype}")
            if matches:
                existing = await self.current(rtype, matches[0], session)
                assert existing is not None
                return WriteResult(existing, created=False, changed=False)
            claims.claim(self.database.pending, session, rtype, if_none_exist)
        new_id = resource_id or str(uuid.uuid4())
        return await self._write(session, caller, rtype, new_id, resource, blob, current=None, method="POST")

    async def update_in(
        self, session: Session, caller: Caller, resource_type: str, resource_id: str, resource: dict[str, Any], *,
        blob: dict[str, Any] | None = None, if_match: int | None = None, method: str = "PUT",
        for_server: bool = False,
    ) -> WriteResult:
        """`for_server`: a consequence the server draws (a write rule), made whoever may see the target."""
        check_id(resource_id)
        if resource.get("id") != resource_id:
            raise FhirError(400, "invalid", f"The body's id '{resource.get('id')}' differs from the URL's '{resource_id}'", ["id"])
        current = await self.current(resource_type, resource_id, session)
        if current is not None and not for_server \
                and await self.find_current(caller, resource_type, resource_id, session) is None:
            # Neither overwrite nor reveal what the caller may not see; a new id would fork identity.
            raise FhirError(409, "conflict", f"{resource_type}/{resource_id} cannot be written with this id")
        if if_match is not None and (current is None or current.version != if_match):
            have = "none" if current is None else current.version_id
            raise FhirError(412, "conflict", f"If-Match version {if_match} is not the current version ({have})")
        if current is not None and not current.deleted and _content(current.resource) == _content(resource) \
                and binaries.same_content(current.blob, blob):
            return WriteResult(current, created=False, changed=False)
        return await self._write(session, caller, resource_type, resource_id, resource, blob, current=current,
                                 method=method)

    async def conditional_update_in(
        self, session: Session, caller: Caller, resource_type: str, criteria: list[tuple[str, str]],
        resource: dict[str, Any], *, blob: dict[str, Any] | None = None, if_match: int | None = None,
    ) -> WriteResult:
        matches = await self.match_params(caller, resource_type, criteria, session, limit=2)
        if len(matches) > 1:
            raise FhirError(412, "multiple-matches", f"The conditional update criteria match more than one {resource_type}")
        if not matches:
            claims.claim(self.database.pending, session, resource_type, criteria)
            if resource.get("id"):
                return await self.update_in(session, caller, resource_type, check_id(resource["id"]), resource, blob=blob)
            return await self.create_in(session, caller, resource, blob=blob)
        if resource.get("id") not in (None, matches[0]):
            raise FhirError(400, "invalid", f"The body's id '{resource['id']}' differs from the matched resource '{matches[0]}'", ["id"])
        resource = {**resource, "id": matches[0]}
        return await self.update_in(session, caller, resource_type, matches[0], resource, blob=blob, if_match=if_match)

    async def delete_in(self, session: Session, caller: Caller, resource_type: str, resource_id: str) -> WriteResult | None:
        current = await self.find_current(caller, resource_type, resource_id, session)
        if current is None or current.deleted:
            return None
        return await self._write(session, caller, resource_type, resource_id, None, None, current=current,
                                 method="DELETE")

    async def conditional_delete_in(self, session: Session, caller: Caller, resource_type: str,
                                    criteria: list[tuple[str, str]]) -> WriteResult | None:
        matches = await self.match_params(caller, resource_type, criteria, session, limit=2, hidden_absent=True)
        if len(matches) > 1:
            raise FhirError(412, "multiple-matches", f"The conditional delete criteria match more than one {resource_type}")
        if not matches:
            return None
        return await self.delete_in(session, caller, resource_type, matches[0])

    async def match(self, caller: Caller, resource_type: str, query: str, session: Session, limit: int) -> list[str]:
        params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        return await self.match_params(caller, resource_type, params, session, limit)

    async def match_params(self, caller: Caller, resource_type: str, params: list[tuple[str, str]], session: Session,
                           limit: int, *, hidden_absent: bool = False) -> list[str]:
        """Ids matching conditional criteria, looked for in the whole store so identity never forks.

        A match in a record the caller may not open is refused as a read of it would be (403); a
        match they may not see is a 409 that names only what the caller sent, or, with
        `hidden_absent` (conditional delete and patch, which create nothing), no match at all.
        """
        if not params:
            raise FhirError(412, "invalid", "Conditional criteria are empty")
        matches = await self.ids(resource_type, params, session, limit)
        if not matches:
            return matches
        reader = self.reader(caller, session)
        if resource_type == "Patient":
            # A Patient matched by identity is the one record every depositor writes into (CDA and
            # HL7 v2 intake match it by INS), whoever may read it: the record's own rules decide
            # the deposit (record-write hook); only the search filters apply here.
            await reader.open_for_identity()
        else:
            patients = await self._patients_of(resource_type, matches, session)
            await reader.open(patients)
        if not await reader.limited(resource_type):
            return matches
        visible = await self.engine.ids(resource_type, params, reader, limit)
        if set(matches) - set(visible):
            if hidden_absent:
                return [m for m in matches if m in visible]
            raise FhirError(409, "conflict", f"The criteria {urlencode(params)} of this {resource_type} conflict with "
                            "a stored resource")
        return matches

    async def _patients_of(self, resource_type: str, ids: list[str], session: Session) -> list[str]:
        await self.settle(session, IDS, resource_type)
        async with self._reading(session):
            if by_patient(resource_type):
                patients = list((await self.ids_table.patients(resource_type, ids, session)).values())
            else:
                docs = await self.collection(resource_type).find({"_id": {"$in": ids}}, {"pat": 1},
                                                                 session=session).to_list(None)
                patients = [d.get("pat") for d in docs]
        return list(dict.fromkeys(p for p in patients if p))

    async def ids(self, resource_type: str, params: list[tuple[str, str]], session: Session, limit: int) -> list[str]:
        """Ids matching criteria in the whole store: the server's own checks (duplicates, replaced
        documents, conditional references), never answered to a caller as such."""
        known = self.known.of(session)
        reader = self.reader(None, session) if known is None else _Remembering(self, session, known)
        return await self.engine.ids(resource_type, params, reader, limit)

    async def search(
        self, caller: Caller, resource_type: str, request: SearchRequest, *, base_url: str, strict: bool, count: int
    ) -> SearchResult:
        self.check_type(resource_type)
        reader = await self.reader(caller).open(await self.named_patients(resource_type, request))
        return await self.engine.search(resource_type, request, reader, base_url=base_url, strict=strict, count=count)

    async def named_patients(self, resource_type: str, request: SearchRequest) -> list[str] | None:
        return await named_patients(self, resource_type, request)

    async def _write(
        self, session: Session, caller: Caller, resource_type: str, resource_id: str, resource: dict[str, Any] | None,
        blob: dict[str, Any] | None, *, current: Stored | None, method: str,
    ) -> WriteResult:
        version = (current.version + 1) if current else 1
        stamp = now_instant()
        known = self.known.of(session)
        if known is not None and resource_type in RECORD_TYPES:
            known.forget()
        body: dict[str, Any] | None = None
        ix: dict[str, Any] = {}
        sk: dict[str, Any] = {}
        if resource is not None:
            # Only the top level changes (id, meta), so a shallow copy keeps the caller's dict intact.
            body = dict(resource)
            body["id"] = resource_id
            meta = dict(body.get("meta") or {})
            meta["versionId"] = str(version)
            meta["lastUpdated"] = stamp
            body["meta"] = meta
            ix, sk = self.index(body)
        context_reference = _security_context(body if body is not None else current.resource if current else None)
        context = await self.current(*context_reference.split("/"), session) \
            if context_reference and context_reference.split("/")[0] in self.resource_types else None
        if body is None:
            # A deletion stays in the record of the patient it belonged to.
            patient = current.patient if current else None
        elif context is not None:
            patient = context.patient
        else:
            patient = patient_of(resource_type, resource_id, ix)
        own = self.reader(None, session)
        await self.hooks.check_record(RecordWriteCheck(caller, resource_type, resource_id, body, current, patient,
                                                       session, own))
        keys = await self.hooks.keys(caller, resource_type, body, current, context, own)
        if context_reference:
            # Kept even before its target is stored: the target's first write then finds this Binary.
            keys["ctx"] = context_reference
        if blob is not None and binaries.UNSENT in blob:
            assert session is not None, "a write runs in a transaction (Repository.run)"
            blob = self.blobs.send(self.database.pending, session, blob)
        stored = Stored(resource_type, resource_id, version, stamp, resource is None, body, blob,
                        keys_of(resource_type, ix), patient, keys)
        collection = self.collection(resource_type)
        document = current_document(stored, ix, sk)
        try:
            if current is None:
                # Deferred to the commit with the transaction's other inserts (storage/pending.py):
                # one insert_many per collection. The `ids` entry's unique `_id` refuses an id
                # taken on any shard there (a concurrent create: retried, `in_transaction`).
                assert session is not None and known is not None, "a write runs in a transaction (Repository.run)"
                if by_patient(resource_type):
                    self.database.pending.insert(session, IDS, [IdsTable.document(resource_type, resource_id, patient)])
                self.database.pending.insert(session, collection_name(resource_type), [document])
                known.staged = True
            else:
                await self.settle(session, resource_type, IDS)
                # Naming the whole shard key lets the store move the document when its patient changes.
                result = await collection.replace_one(
                    {"_id": resource_id, "vid": current.version, **_shard_key(resource_type, current.patient)},
                    document, session=session)
                if result.matched_count != 1:
                    raise VersionConflict()
                if current.patient != patient and by_patient(resource_type):
                    await self.ids_table.repoint(resource_type, resource_id, patient, session)
            if current is not None and (current.keys != keys or current.patient != patient):
                # Earlier versions are seen as the resource now is: masking a document masks its history.
                await self._restamp_history(session, [f"{resource_type}/{resource_id}"], current.patient, patient, keys)
            self.database.pending.insert(session, HISTORY, [history_document(stored, method)])
            self.lookup.replace(self.database.pending, session, resource_id, current.lookup_keys if current else [],
                                stored.lookup_keys, patient, current is not None and current.patient != patient)
            # Events are for the after-commit hooks: with none registered there is no one to tell,
            # and a consumer registered later must not receive a backlog of past writes.
            if self.hooks.consumes_events:
                outbox.add(self.database.pending, session, outbox.write_event(stored, method, caller))
        except DuplicateKeyError as exc:
            raise VersionConflict() from exc
        # Followers are written after what they follow (a transaction orders them so), so a new
        # resource has none yet; one stored earlier naming a resource not yet there stays in no
        # record, seen by its depositor alone, until that resource is next written.
        if current is not None and (current.keys != keys or current.patient != patient):
            await self._follow_context(session, stored, current.patient)
            if known is not None:
                known.forget()  # its followers moved with it
        # Deletions too: a rule may keep something in step with what is no longer there.
        for rule in self.write_rules.get(resource_type, []):
            await rule(self, session, caller, stored)
        if known is not None:
            if resource_type in RECORD_TYPES:
                known.forget()  # its rules refreshed the record's summary, or purged it
            known.stored[(resource_type, resource_id)] = stored
            if by_patient(resource_type):
                known.routes[(resource_type, resource_id)] = patient
        return WriteResult(stored, created=current is None or current.deleted, changed=True)

    async def _follow_context(self, session: Session, stored: Stored, before: str | None) -> None:
        """Resources seen as `stored` (`_security_context`) take its record and keys, current and
        past versions alike, whichever of the two was written first. `before` is the patient
        `stored` had: its followers are in that record, or in none when written before it."""
        if stored.resource_type in FOLLOWERS:
            return
        await self.settle(session)
        target = f"{stored.resource_type}/{stored.id}"
        keys = {**stored.keys, "ctx": target}
        for rtype in FOLLOWERS:
            followers: dict[str, Any] = {"acc.ctx": target}
            if by_patient(rtype):
                followers["pat"] = before if before is None else {"$in": [before, None]}
            found = await self.collection(rtype).find(followers, session=session).to_list(None)
            if not found:
                continue
            moving = [d for d in found if d.get("pat") != stored.patient]
            if not by_patient(rtype):
                # An unsharded collection: one update, whatever the patient was.
                await self.collection(rtype).update_many(followers, {"$set": {"acc": keys, "pat": stored.patient}},
                                                         session=session)
            else:
                if len(moving) < len(found):
                    await self.collection(rtype).update_many({**followers, "pat": stored.patient},
                                                             {"$set": {"acc": keys}}, session=session)
                for doc in moving:
                    # A shard key value changes through one document's replacement naming the whole key.
                    await self.collection(rtype).replace_one(
                        {"_id": doc["_id"], "vid": doc["vid"], "pat": doc.get("pat")},
                        {**doc, "acc": keys, "pat": stored.patient}, session=session)
                    await self.ids_table.repoint(rtype, doc["_id"], stored.patient, session)
                    if (known := self.known.of(session)) is not None:
                        known.routes[(rtype, doc["_id"])] = stored.patient
            for doc in moving:
                self.lookup.replace(self.database.pending, session, doc["_id"], doc.get("lk") or [],
                                    doc.get("lk") or [], stored.patient, True)
            for patient in dict.fromkeys(d.get("pat") for d in found):
                await self._restamp_history(session, [f"{rtype}/{d['_id']}" for d in found if d.get("pat") == patient],
                                            patient, stored.patient, keys)

    async def _restamp_history(self, session: Session, rids: list[str], before: str | None, after: str | None,
                               keys: dict[str, Any]) -> None:
        """Give the past versions of resources of patient `before` the patient and keys they now have."""
        await self.settle(session, HISTORY)
        history = self.database.collection(HISTORY)
        query = {"rid": rids[0] if len(rids) == 1 else {"$in": rids}, "pat": before}
        if before == after:
            await history.update_many(query, {"$set": {"acc": keys}}, session=session)
            return
        # No update_many changes a shard key value: the versions move to the new patient's shard.
        docs = await history.find(query, session=session).to_list(None)
        if docs:
            await history.delete_many(query, session=session)
            await history.insert_many([{**d, "acc": keys, "pat": after} for d in docs], ordered=True, session=session)

    # -- many writes in one transaction: the NDJSON import (fhir_server.operations.bulk_import)
    async def write_many(self, caller: Caller, items: list[tuple[str, dict[str, Any]]], *,
                         groups: list[int] | None = None, within: Within | None = None) -> list[WriteResult | FhirError]:
        """Prepared resources (`prepare`), each with the id it is to have (distinct), written in one
        store transaction with the documents `_write` makes (current, history, lookup keys, outbox
        event) and the same record-write and record-keys hooks, but sent as one insert_many per
        collection instead of one round trip per resource (docs/PERFORMANCE.md). A resource whose id
        is stored already is updated, or left alone when unchanged (an import run again). A
        refusal (a hook's, or a write rule's) refuses that resource alone, with nothing of it stored.

        `groups` (one number per item) makes resources that stand together (a person and their
        representatives, fhir_server.record.enrolment): one refused refuses its whole group.
        `within` runs at the end of the transaction with the results so far, to write what goes
        with them (a notice queued with the version that records it).
        """
        await self.ready([*(r["resourceType"] for _, r in items), *FOLLOWERS])
        results: list[WriteResult | FhirError | None] = [None] * len(items)
        pending = list(range(len(items)))
        known = False
        while True:
            batch = [(i, *items[i]) for i in pending]
            try:
                done = await self.in_transaction(lambda s: self._write_many(s, caller, batch, known, groups, within))
            except (DuplicateKeyError, BulkWriteError):
                if known:
                    raise
                # Some ids are stored already: each one is looked up, in a new transaction.
                known = True
                continue
            except _Withdrawn as withdrawn:
                together = [i for i in pending if groups[i] == groups[withdrawn.index]] if groups else [withdrawn.index]
                for index in together:
                    results[index] = withdrawn.error
                    pending.remove(index)
                continue
            for index, result in done.items():
                results[index] = result
            # Each resource was either written (or left alone) by the last run, or withdrawn before it.
            written = [r for r in results if r is not None]
            assert len(written) == len(items), "write_many lost a resource's result"
            return written

    async def _write_many(self, session: Session, caller: Caller, items: list[tuple[int, str, dict[str, Any]]],
                          known: bool, groups: list[int] | None = None,
                          within: Within | None = None) -> dict[int, WriteResult | FhirError]:
        """`known`: look up each id's current version (False: they are all new)."""
        results: dict[int, WriteResult | FhirError] = {}
        staged: list[tuple[int, Stored, Stored | None, dict[str, Any]]] = []
        stamp = now_instant()
        self.read_memo[id(session)] = {}
        try:
            for index, resource_id, resource in items:
                rtype = resource["resourceType"]
                current = await self.current(rtype, resource_id, session) if known else None
                try:
                    if current is not None:
                        if await self.find_current(caller, rtype, resource_id, session) is None:
                            raise FhirError(409, "conflict", f"{rtype}/{resource_id} cannot be written with this id")
                        if not current.deleted and _content(current.resource) == _content({**resource, "id": resource_id}):
                            results[index] = WriteResult(current, created=False, changed=False)
                            continue
                    stored, document = await self._stage(session, caller, rtype, resource_id, resource, current, stamp)
                except FhirError as exc:
                    # Refused before anything of it was written.
                    results[index] = exc
                    continue
                staged.append((index, stored, current, document))
        finally:
            self.read_memo.pop(id(session), None)
        if groups:
            staged_groups = {groups[index] for index, _, _, _ in staged}
            for index, result in results.items():
                if isinstance(result, FhirError) and groups[index] in staged_groups:
                    # Refused with a resource of its group staged: the group goes, none of it written.
                    raise _Withdrawn(index, result)
        await self.settle(session)
        inserts: dict[str, list[dict[str, Any]]] = {}
        for index, stored, current, document in staged:
            if current is None:
                inserts.setdefault(stored.resource_type, []).append(document)
                continue
            replaced = await self.collection(stored.resource_type).replace_one(
                {"_id": stored.id, "vid": current.version, **_shard_key(stored.resource_type, current.patient)},
                document, session=session)
            if replaced.matched_count != 1:
                raise _Withdrawn(index, FhirError(409, "conflict", "The resource was changed concurrently; retry it"))
            if current.patient != stored.patient and by_patient(stored.resource_type):
                await self.ids_table.repoint(stored.resource_type, stored.id, stored.patient, session)
            if current.keys != stored.keys or current.patient != stored.patient:
                await self._restamp_history(session, [f"{stored.resource_type}/{stored.id}"], current.patient,
                                            stored.patient, stored.keys)
        for rtype, documents in inserts.items():
            await self.collection(rtype).insert_many(documents, ordered=True, session=session)
        if (known_now := self.known.of(session)) is not None:
            known_now.current.clear()  # what the checks above read is now replaced
        routes = [IdsTable.document(s.resource_type, s.id, s.patient) for _, s, c, _ in staged
                  if c is None and by_patient(s.resource_type)]
        if routes:
            # A taken id fails the commit like the insert above: the run is retried looking ids up.
            self.database.pending.insert(session, IDS, routes)
        if staged:
            self.database.pending.insert(session, HISTORY, [history_document(s, "PUT" if c else "POST")
                                                            for _, s, c, _ in staged])
        for index, stored, current, _ in staged:
            self.lookup.replace(self.database.pending, session, stored.id, current.lookup_keys if current else [],
                                stored.lookup_keys, stored.patient, current is not None and current.patient != stored.patient)
            if self.hooks.consumes_events:
                outbox.add(self.database.pending, session, outbox.write_event(stored, "PUT" if current else "POST", caller))
            # A new resource has an id only this import knew (fhir_server.operations.bulk_import), so
            # nothing can already be seen as it: only an update may move its followers.
            if current is not None and (current.keys != stored.keys or current.patient != stored.patient):
                await self._follow_context(session, stored, current.patient)
                if (known_now := self.known.of(session)) is not None:
                    known_now.forget()  # its followers moved with it
            try:
                for rule in self.write_rules.get(stored.resource_type, []):
                    await rule(self, session, caller, stored)
            except FhirError as exc:
                raise _Withdrawn(index, exc) from exc
            if stored.resource_type in RECORD_TYPES and (known := self.known.of(session)) is not None:
                known.forget()
            results[index] = WriteResult(stored, created=current is None or current.deleted, changed=True)
        if within is not None:
            await within(session, results)
        return results

    async def _stage(self, session: Session, caller: Caller, resource_type: str, resource_id: str,
                     resource: dict[str, Any], current: Stored | None, stamp: str) -> tuple[Stored, dict[str, Any]]:
        """The version `_write` would store, once the record-write hook let it: (version, current document)."""
        version = (current.version + 1) if current else 1
        body = dict(resource)
        body["id"] = resource_id
        body["meta"] = {**(body.get("meta") or {}), "versionId": str(version), "lastUpdated": stamp}
        ix, sk = self.index(body)
        context_reference = _security_context(body)
        context = await self.current(*context_reference.split("/"), session) \
            if context_reference and context_reference.split("/")[0] in self.resource_types else None
        patient = context.patient if context is not None else patient_of(resource_type, resource_id, ix)
        own = self.reader(None, session)
        await self.hooks.check_record(RecordWriteCheck(caller, resource_type, resource_id, body, current, patient,
                                                       session, own))
        keys = await self.hooks.keys(caller, resource_type, body, current, context, own)
        if context_reference:
            keys["ctx"] = context_reference
        stored = Stored(resource_type, resource_id, version, stamp, False, body, None,
                        keys_of(resource_type, ix), patient, keys)
        return stored, current_document(stored, ix, sk)


# The most documents a match is asked for (Repository.match_params: limit 2, one being expected).
FEW = 2


def _remember(known: Known, resource_type: str, doc: dict[str, Any]) -> None:
    """A current document a transaction read, as `Repository.current` would answer it; a Patient's
    is also what a record check reads (access.records: its resource and rules summary, unless
    deleted), which then need not read it again."""
    key = (resource_type, doc["_id"])
    if key not in known.stored:
        known.current[key] = from_current(resource_type, doc)
    if resource_type == "Patient":
        known.records.setdefault(doc["_id"], None if doc.get("del") else doc)


class _Remembering(Reader):
    """The server's own reader inside a transaction, for its identity matches (a deposit's
    patient, encounter, replaced document): the few documents a match finds are read whole and
    remembered (`_remember`), so writing or answering them next asks the store nothing more."""

    def __init__(self, repository: Repository, session: Session, known: Known) -> None:
        super().__init__(repository, None, session)
        self.known = known

    async def find(self, resource_type: str, query: dict[str, Any], projection: dict[str, Any] | None = None, *,
                   sort: list[tuple[str, int]] | None = None, limit: int = 0) -> list[dict[str, Any]]:
        if projection != {"_id": 1} or not 0 < limit <= FEW:
            return await super().find(resource_type, query, projection, sort=sort, limit=limit)
        docs = await super().find(resource_type, query, CURRENT_PROJECTION, sort=sort, limit=limit)
        for doc in docs:
            _remember(self.known, resource_type, doc)
        return [{"_id": d["_id"]} for d in docs]


def _only_duplicates(error: BulkWriteError) -> bool:
    errors = error.details.get("writeErrors") or []
    return bool(errors) and all(e.get("code") == DUPLICATE_KEY for e in errors)


class _Withdrawn(Exception):
    """One resource of a `write_many` refused after the transaction wrote: it is run again without it."""

    def __init__(self, index: int, error: FhirError) -> None:
        super().__init__(error.diagnostics)
        self.index = index
        self.error = error
