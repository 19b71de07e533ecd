"""The one access path to stored resources: every read and write of the server passes here.

Writes run in one store transaction each (current document + history entry, plus whatever the
write rules add), so a version is either fully there or not at all. Reads of current versions,
versions, history and searches are methods of this class too, so consent and audit can be
enforced in one place.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from fhir_server.errors import FhirError, gone, not_found
from fhir_server.operations.patch import apply_json_patch
from fhir_server.search.lookup import LookupTable, keys_of
from fhir_server.storage import binaries
from fhir_server.storage.database import HISTORY, Database
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
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
SERVER_META = ("versionId", "lastUpdated")


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


# Raises FhirError: 400 when the resource breaks the base R4 rules, 422 when it breaks a profile.
Validator = Callable[[dict[str, Any]], None]
Indexer = Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]
# The store indexes of a type: (fields holding one value, fields holding arrays).
IndexFields = Callable[[str], tuple[list[str], list[str]]]
WriteRule = Callable[["Repository", Session, Stored], Awaitable[None]]
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


class Repository:
    def __init__(
        self,
        database: Database,
        resource_types: set[str],
        validate: Validator,
        index: Indexer,
        index_fields: IndexFields,
        gridfs_threshold: int,
    ) -> None:
        self.database = database
        self.resource_types = resource_types
        self.validate = validate
        self.index = index
        self.index_fields = index_fields
        self._indexed: set[str] = set()
        self.blobs = binaries.BlobStore(database.db, gridfs_threshold)
        self.lookup = LookupTable(database.db)
        self.search_engine: SearchEngine | None = None
        self.write_rules: dict[str, list[WriteRule]] = {}
        self.patch_rules: dict[str, list[PatchRule]] = {}

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
        for rtype in sorted(set(resource_types) - self._indexed):
            if rtype in self.resource_types:
                await self.database.ensure_indexes(rtype, *self.index_fields(rtype))
                self._indexed.add(rtype)

    def prepare(self, resource: Any, resource_type: str | None = None) -> dict[str, Any]:
        """Check a client's resource before any store work: shape, type, then validation."""
        if not isinstance(resource, dict):
            raise FhirError(400, "structure", "The body must be a JSON object holding a FHIR resource")
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            raise FhirError(400, "required", "resourceType is missing", ["resourceType"])
        if resource_type is not None and rtype != resource_type:
            raise FhirError(400, "invalid", f"The body is a {rtype}, the URL names {resource_type}", ["resourceType"])
        self.check_type(rtype)
        self.validate(resource)
        return resource

    def patched(self, current: Stored, operations: Any) -> dict[str, Any]:
        """A JSON Patch applied to the current version, held to the type's patch rules, then validated."""
        before = current.resource or {}
        after = apply_json_patch(before, operations)
        for rule in self.patch_rules.get(current.resource_type, []):
            rule(before, after)
        return self.prepare(after, current.resource_type)

    async def stash_binary(self, resource: dict[str, Any], raw: bytes | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if resource.get("resourceType") != "Binary":
            return resource, None
        content = raw if raw is not None else binaries.decode_data(resource)
        stripped = {k: v for k, v in resource.items() if k != "data"}
        blob = await self.blobs.stash(content)
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
    async def find_current(self, resource_type: str, resource_id: str, session: Session = None) -> Stored | None:
        doc = await self.collection(resource_type).find_one({"_id": resource_id}, {"ix": 0, "sk": 0}, session=session)
        return from_current(resource_type, doc) if doc else None

    async def read(self, resource_type: str, resource_id: str, session: Session = None) -> Stored:
        self.check_type(resource_type)
        async with self._reading(session):
            stored = await self.find_current(resource_type, resource_id, session)
        if stored is None:
            raise not_found(resource_type, resource_id)
        if stored.deleted:
            raise gone(resource_type, resource_id)
        return stored

    async def vread(self, resource_type: str, resource_id: str, version: str) -> Stored:
        self.check_type(resource_type)
        if not version.isdigit():
            raise FhirError(404, "not-found", f"Version '{version}' of {resource_type}/{resource_id} is not known")
        async with self._reading(None):
            doc = await self.database.collection(HISTORY).find_one(
                {"rid": f"{resource_type}/{resource_id}", "vid": int(version)}
            )
        if doc is None:
            if await self.find_current(resource_type, resource_id) is None:
                raise not_found(resource_type, resource_id)
            raise FhirError(404, "not-found", f"Version {version} of {resource_type}/{resource_id} is not known")
        stored = from_history(doc)
        if stored.deleted:
            raise FhirError(410, "deleted", f"Version {version} of {resource_type}/{resource_id} is a deletion")
        return stored

    def _reading(self, session: Session) -> Any:
        # Inside a transaction the writer already holds the gate.
        return nullcontext() if session is not None else self.database.gate.read()

    async def history_page(self, query: dict[str, Any], count: int, before: str | None) -> list[HistoryEntry]:
        """Newest first; `before` is the key of the last entry of the previous page."""
        condition = dict(query)
        if before is not None:
            condition["_id"] = {"$lt": before}
        async with self._reading(None):
            cursor = self.database.collection(HISTORY).find(condition).sort("_id", -1).limit(count + 1)
            docs = await cursor.to_list(length=count + 1)
        return [HistoryEntry(from_history(d), d["method"], d["_id"]) for d in docs]

    # ------------------------------------------------------------------ writes
    async def create(
        self, resource: dict[str, Any], *, if_none_exist: str | None = None, raw: bytes | None = None
    ) -> WriteResult:
        stripped, blob = await self.stash_binary(resource, raw)

        async def work(session: Session) -> WriteResult:
            return await self.create_in(session, stripped, blob=blob, if_none_exist=if_none_exist)

        return await self._run(work, resource["resourceType"])

    async def update(
        self, resource_type: str, resource_id: str, resource: dict[str, Any], *,
        if_match: int | None = None, raw: bytes | None = None,
    ) -> WriteResult:
        stripped, blob = await self.stash_binary(resource, raw)

        async def work(session: Session) -> WriteResult:
            return await self.update_in(session, resource_type, resource_id, stripped, blob=blob, if_match=if_match)

        return await self._run(work, resource_type)

    async def conditional_update(
        self, resource_type: str, criteria: list[tuple[str, str]], resource: dict[str, Any], *, if_match: int | None = None
    ) -> WriteResult:
        stripped, blob = await self.stash_binary(resource, None)

        async def work(session: Session) -> WriteResult:
            return await self.conditional_update_in(session, resource_type, criteria, stripped, blob=blob, if_match=if_match)

        return await self._run(work, resource_type)

    async def delete(self, resource_type: str, resource_id: str) -> WriteResult | None:
        self.check_type(resource_type)
        return await self._run(lambda session: self.delete_in(session, resource_type, resource_id), resource_type)

    async def conditional_delete(self, resource_type: str, criteria: list[tuple[str, str]]) -> WriteResult | None:
        self.check_type(resource_type)

        async def work(session: Session) -> WriteResult | None:
            return await self.conditional_delete_in(session, resource_type, criteria)

        return await self._run(work, resource_type)

    async def _run(self, work: Callable[[Session], Awaitable[Any]], resource_type: str, attempts: int = 5) -> Any:
        await self.ready([resource_type])
        for attempt in range(attempts):
            try:
                return await self.database.in_transaction(work)
            except VersionConflict:
                if attempt == attempts - 1:
                    raise FhirError(409, "conflict", "The resource was changed concurrently; retry the request")
        raise AssertionError("unreachable")

    # -- staged writes: run inside a store transaction (`session`), used by bundles too
    async def create_in(
        self, session: Session, resource: dict[str, Any], *, blob: dict[str, Any] | None = None,
        if_none_exist: str | None = None, resource_id: str | None = None,
    ) -> WriteResult:
        rtype = resource["resourceType"]
        if if_none_exist:
            matches = await self.match(rtype, if_none_exist, session, limit=2)
            if len(matches) > 1:
                raise FhirError(412, "duplicate", f"If-None-Exist '{if_none_exist}' matches more than one {rtype}")
            if matches:
                existing = await self.find_current(rtype, matches[0], session)
                assert existing is not None
                return WriteResult(existing, created=False, changed=False)
        new_id = resource_id or str(uuid.uuid4())
        return await self._write(session, rtype, new_id, resource, blob, current=None, method="POST")

    async def update_in(
        self, session: Session, resource_type: str, resource_id: str, resource: dict[str, Any], *,
        blob: dict[str, Any] | None = None, if_match: int | None = None,
    ) -> WriteResult:
        check_id(resource_id)
        if resource.get("id") != resource_id:
            raise FhirError(400, "invalid", f"The body's id '{resource.get('id')}' differs from the URL's '{resource_id}'", ["id"])
        current = await self.find_current(resource_type, resource_id, session)
        if if_match is not None and (current is None or current.version != if_match):
            have = "none" if current is None else current.version_id
            raise FhirError(412, "conflict", f"If-Match version {if_match} is not the current version ({have})")
        if current is not None and not current.deleted and _content(current.resource) == _content(resource) \
                and binaries.same_content(current.blob, blob):
            return WriteResult(current, created=False, changed=False)
        return await self._write(session, resource_type, resource_id, resource, blob, current=current, method="PUT")

    async def conditional_update_in(
        self, session: Session, resource_type: str, criteria: list[tuple[str, str]], resource: dict[str, Any], *,
        blob: dict[str, Any] | None = None, if_match: int | None = None,
    ) -> WriteResult:
        matches = await self.match_params(resource_type, criteria, session, limit=2)
        if len(matches) > 1:
            raise FhirError(412, "multiple-matches", f"The conditional update criteria match more than one {resource_type}")
        if not matches:
            if resource.get("id"):
                return await self.update_in(session, resource_type, check_id(resource["id"]), resource, blob=blob)
            return await self.create_in(session, resource, blob=blob)
        if resource.get("id") not in (None, matches[0]):
            raise FhirError(400, "invalid", f"The body's id '{resource['id']}' differs from the matched resource '{matches[0]}'", ["id"])
        resource = {**resource, "id": matches[0]}
        return await self.update_in(session, resource_type, matches[0], resource, blob=blob, if_match=if_match)

    async def delete_in(self, session: Session, resource_type: str, resource_id: str) -> WriteResult | None:
        current = await self.find_current(resource_type, resource_id, session)
        if current is None or current.deleted:
            return None
        return await self._write(session, resource_type, resource_id, None, None, current=current, method="DELETE")

    async def conditional_delete_in(self, session: Session, resource_type: str, criteria: list[tuple[str, str]]) -> WriteResult | None:
        matches = await self.match_params(resource_type, criteria, session, limit=2)
        if len(matches) > 1:
            raise FhirError(412, "multiple-matches", f"The conditional delete criteria match more than one {resource_type}")
        if not matches:
            return None
        return await self.delete_in(session, resource_type, matches[0])

    async def match(self, resource_type: str, query: str, session: Session, limit: int) -> list[str]:
        params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        return await self.match_params(resource_type, params, session, limit)

    async def match_params(self, resource_type: str, params: list[tuple[str, str]], session: Session, limit: int) -> list[str]:
        if not params:
            raise FhirError(412, "invalid", "Conditional criteria are empty")
        return await self.engine.ids(resource_type, params, session, limit)

    @property
    def engine(self) -> SearchEngine:
        assert self.search_engine is not None, "search engine not attached"
        return self.search_engine

    async def search(
        self, resource_type: str, request: SearchRequest, *, base_url: str, strict: bool, count: int
    ) -> SearchResult:
        self.check_type(resource_type)
        return await self.engine.search(resource_type, request, base_url=base_url, strict=strict, count=count)

    async def _write(
        self, session: Session, resource_type: str, resource_id: str, resource: dict[str, Any] | None,
        blob: dict[str, Any] | None, *, current: Stored | None, method: str,
    ) -> WriteResult:
        version = (current.version + 1) if current else 1
        stamp = now_instant()
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
        stored = Stored(resource_type, resource_id, version, stamp, resource is None, body, blob,
                        keys_of(resource_type, ix))
        collection = self.collection(resource_type)
        document = current_document(stored, ix, sk)
        try:
            if current is None:
                await collection.insert_one(document, session=session)
            else:
                result = await collection.replace_one({"_id": resource_id, "vid": current.version}, document, session=session)
                if result.matched_count != 1:
                    raise VersionConflict()
            self.database.pending.insert(session, HISTORY, [history_document(stored, method)])
            self.lookup.replace(self.database.pending, session, resource_id, current.lookup_keys if current else [],
                                stored.lookup_keys)
        except DuplicateKeyError as exc:
            raise VersionConflict() from exc
        if body is not None:
            for rule in self.write_rules.get(resource_type, []):
                await rule(self, session, stored)
        return WriteResult(stored, created=current is None or current.deleted, changed=True)
