"""Batch and transaction Bundles (FHIR R4 http.html#transaction).

A transaction runs every entry in one store transaction: on any failure nothing of it stays.
Entries run in the spec's order (DELETE, POST, PUT/PATCH, GET), except that the Practitioners,
Organizations and PractitionerRoles it creates or updates are written before its other creates and
updates: a participant named by id is looked up when the resource naming it is written
(access/participants.py), so a thread or appointment and its participants may come in one
transaction. fullUrls and conditional references are rewritten first (operations/reference_rewrite.py).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from fhir_server.access.participants import NAMING_TYPES
from fhir_server.audit import hooks as audit_hooks
from fhir_server.audit import trace
from fhir_server.facilities import Remembered
from fhir_server.errors import FhirError, operation_outcome
from fhir_server.etag import parse_etag
from fhir_server.interactions import read as reading
from fhir_server.interactions import write as writing
from fhir_server.interactions.output import outgoing
from fhir_server.interactions.search import SearchInteraction
from fhir_server.ingest import dry_run
from fhir_server.operations.bundle_entries import Entry, parse_bundle
from fhir_server.operations.reference_rewrite import ReferenceRewriter
from fhir_server.mhd import cda_metadata, document_binaries, provide_bundle
from fhir_server.security.callers import Caller
from fhir_server.security.scopes import Matcher, authorize
from fhir_server.security.search_reach import reached_types
from fhir_server.storage import claims
from fhir_server.storage.repository import FOLLOWERS, Repository, Session, VersionConflict, WriteResult, check_id

T = TypeVar("T")
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
# A Bundle that meets a concurrent write runs again on fresh data, as often as a single write does.
CONFLICT_ATTEMPTS = 5


class _Rehearsed(Exception):
    """A dry run's transaction ran every check and write: raised to abort it before commit."""


@dataclass
class Prepared:
    entry: Entry
    resource: dict[str, Any] | None = None
    # `resource` as checked, before a run resolves its references: each run starts again from it.
    checked: dict[str, Any] | None = None
    blob: dict[str, Any] | None = None
    patch: Any = None
    target_id: str | None = None
    response: dict[str, Any] = field(default_factory=dict)


def _patch_document(entry: Entry) -> Any:
    resource = entry.resource or {}
    if resource.get("resourceType") == "Parameters":
        return resource  # a FHIRPath Patch (fhir_server.operations.fhirpath_patch)
    content_type, data = resource.get("contentType"), resource.get("data", "")
    if resource.get("resourceType") == "Binary" and isinstance(content_type, str) \
            and content_type.startswith("application/json-patch+json") and isinstance(data, str):
        try:
            return orjson.loads(base64.b64decode(data))
        except (binascii.Error, ValueError) as exc:
            raise FhirError(400, "invalid", f"{entry.where}: the JSON Patch is not base64 JSON", [entry.where]) from exc
    raise FhirError(400, "not-supported", f"{entry.where}: PATCH entries take a Binary holding a JSON Patch, or a FHIRPath Patch (Parameters)", [entry.where])


async def _retried(run: Callable[[], Awaitable[T]], what: str) -> T:
    """`run` (one store transaction) again while another writer changed what it writes, then 409."""
    for _ in range(CONFLICT_ATTEMPTS):
        try:
            return await run()
        except VersionConflict:
            continue
    raise FhirError(409, "conflict", f"{what}: a resource it writes kept changing while it ran, written by another "
                    "request or by another entry of the same Bundle. Nothing of it was stored; send it again, or "
                    "do not write one resource from two entries.")


def _order(item: Prepared) -> tuple[int, int, int]:
    """DELETEs; then the writes of participants' resources (Practitioner, Organization, then
    PractitionerRole, which names them); then the other POSTs, PUTs and PATCHes; GETs last.
    Followers come after what they follow, so a Binary lands in its document's record at once."""
    method, rtype = item.entry.method, item.entry.resource_type
    if method in ("POST", "PUT", "PATCH") and rtype in NAMING_TYPES:
        return (1, NAMING_TYPES.index(rtype), ORDER[method])
    return (0 if method == "DELETE" else 2, ORDER[method], rtype in FOLLOWERS)


def entry_interaction(entry: Entry) -> str:
    """The FHIR interaction a Bundle entry asks for, in the scopes' terms."""
    if entry.method in ("GET", "HEAD"):
        if entry.resource_id is None:
            return "search-type"
        return "vread" if entry.version else "read"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[entry.method]


class BundleProcessor:
    def __init__(self, repository: Repository, search: SearchInteraction, caller: Caller, base_url: str, *,
                 return_resources: bool, document_publication: bool = False, matcher: Matcher | None = None,
                 dry_run: bool = False, contents: Mapping[str, bytes] | None = None) -> None:
        self.repo = repository
        # Each entry is authorised for this caller: a refused batch entry answers 403, a refused
        # transaction entry fails the whole transaction.
        self.caller = caller
        self.matcher = matcher
        self.search = search
        self.caller = caller
        self.base = base_url.rstrip("/")
        self.return_resources = return_resources
        # ITI-105 builds its own bundle: it gets the ITI-65 checks without carrying a SubmissionSet.
        self.document_publication = document_publication
        # A dry run (the ingest endpoints' `_dryRun`) runs a transaction whole, every write in its
        # store transaction, then aborts it: the answer is the real one, and nothing is stored.
        self.dry_run = dry_run
        # The bytes of Binary entries (by fullUrl) an ingest adapter already holds, so they are not
        # decoded from base64 again: the entry's `data`, if it has one, is their base64.
        self.contents: Mapping[str, bytes] = contents or {}

    async def process(self, bundle: Any) -> dict[str, Any]:
        kind, entries = parse_bundle(bundle, self.base)
        trace.bundle(kind)
        if self.dry_run and kind != "transaction":
            raise FhirError(400, "not-supported", "A dry run takes a transaction Bundle: a batch's entries are stored one by one")
        if kind == "transaction":
            return await self.transaction(entries)
        return await self.batch(entries)

    # ------------------------------------------------------------------ preparation (outside the store)
    def _authorize(self, entry: Entry) -> None:
        interaction = entry_interaction(entry)
        types = [entry.resource_type] if entry.resource_type else \
            [t for name, value in entry.criteria if name == "_type" for t in value.split(",") if t]
        asks = [(t, entry.criteria if interaction == "search-type" else None) for t in types]
        if interaction == "search-type":
            registry = self.repo.engine.registry
            # Types the search reads besides its own, with no criteria of their own.
            asks += [(o, []) for o in sorted({o for t in types for o in reached_types(t, entry.criteria, registry)})]
        for resource_type, criteria in asks:
            try:
                authorize(self.caller, interaction, resource_type, criteria=criteria,
                          resource=entry.resource if entry.method in ("POST", "PUT") else None, matcher=self.matcher)
            except FhirError as error:
                for issue in error.issues:
                    issue.diagnostics = f"{entry.where}: {issue.diagnostics}"
                    issue.expression = [entry.where]
                raise

    async def _prepare(self, entry: Entry) -> Prepared:
        prepared = Prepared(entry)
        self.repo.check_type(entry.resource_type)
        if entry.resource_type == audit_hooks.APPEND_ONLY and entry.method != "GET":
            # Even one that would change nothing (a DELETE of no event) says what the trail allows.
            raise audit_hooks.append_only()
        self._authorize(entry)
        if entry.method in ("POST", "PUT"):
            try:
                resource = self.repo.prepare(self.caller, entry.resource, entry.resource_type)
            except FhirError as error:
                for issue in error.issues:
                    issue.expression = [f"{entry.where}.resource.{e.split('.', 1)[-1]}" for e in issue.expression] or [entry.where]
                raise
            if entry.method == "PUT" and entry.resource_id is not None:
                check_id(entry.resource_id)
                resource = {**resource, "id": resource.get("id", entry.resource_id)}
                if resource["id"] != entry.resource_id:
                    raise FhirError(400, "invalid", f"{entry.where}: resource id '{resource['id']}' differs from the url's '{entry.resource_id}'", [entry.where])
            raw = self.contents.get(entry.full_url) if entry.full_url else None
            prepared.resource, prepared.blob = await self.repo.stash_binary(resource, raw, keep=not self.dry_run)
            prepared.checked = prepared.resource
        elif entry.method == "PATCH":
            prepared.patch = _patch_document(entry)
        elif entry.method == "DELETE" and entry.resource_id is None and not entry.criteria:
            raise FhirError(400, "invalid", f"{entry.where}: DELETE needs an id or criteria", [entry.where])
        return prepared

    # ------------------------------------------------------------------ transaction
    async def transaction(self, entries: list[Entry]) -> dict[str, Any]:
        searches = [e for e in entries if e.is_search]
        if searches:
            where = searches[0].where
            raise FhirError(400, "not-supported", f"{where}: searches are supported in batch, not inside a transaction",
                            [where])
        if provide_bundle.is_provide_bundle([e.resource for e in entries]):
            cda_metadata.complete(entries)
        prepared = [await self._prepare(e) for e in entries]
        full_urls = [p.entry.full_url for p in prepared if p.entry.full_url]
        if len(full_urls) != len(set(full_urls)):
            raise FhirError(400, "invalid", "Two entries of the transaction share a fullUrl")
        writes = any(p.entry.method not in ("GET", "HEAD") for p in prepared)

        async def work(session: Session) -> None:
            identities = await self._identities(session, prepared)
            rewriter = ReferenceRewriter(self.repo, self.caller, session, identities)
            for item in prepared:
                if item.resource is not None:
                    item.resource = await rewriter.rewrite(item.resource, item.entry.where)
            if self.document_publication or provide_bundle.is_provide_bundle([p.resource for p in prepared]):
                await provide_bundle.check(self.repo, session, prepared)
            document_binaries.bind(prepared)
            # What is seen as another resource (a document's Binary, its submission set) is written
            # after it, so it lands in that resource's record at once (a patient writes only there).
            for item in sorted(prepared, key=_order):
                try:
                    item.response = await self._execute(session, item, identities)
                except FhirError as error:
                    for issue in error.issues:
                        issue.diagnostics = f"{item.entry.where} ({item.entry.method} {item.entry.resource_type}): {issue.diagnostics}"
                        issue.expression = issue.expression or [item.entry.where]
                    raise

        async def run(session: Session) -> None:
            for item in prepared:
                item.resource = item.checked
            await work(session)
            if self.dry_run:
                # The deferred writes too, so a taken id answers as it would in earnest.
                await self.repo.settle(session)
                raise _Rehearsed()

        if writes:
            await self.repo.ready({p.entry.resource_type for p in prepared})
            try:
                await _retried(lambda: self.repo.in_transaction(run, exclude_readers=True), "The transaction")
            except _Rehearsed:
                pass  # every entry ran and answered; the store transaction was rolled back
        else:
            await work(None)
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": [p.response for p in prepared]}

    async def _identities(self, session: Session, prepared: list[Prepared]) -> dict[str, str]:
        """fullUrl -> `Type/id` of what each entry will create or update. The transaction then knows
        which of them do not exist yet (Repository.look_ahead): the ids it makes, and, in one
        query, those the entries name."""
        identities: dict[str, str] = {}
        made: list[tuple[str, str]] = []
        named: list[tuple[str, str]] = []
        for item in prepared:
            entry = item.entry
            if entry.method not in ("POST", "PUT"):
                continue
            if entry.method == "POST":
                matches = await self.repo.match(self.caller, entry.resource_type, entry.if_none_exist, session,
                                                limit=2) if entry.if_none_exist else []
                if len(matches) > 1:
                    raise FhirError(412, "duplicate", f"{entry.where}: ifNoneExist matches more than one {entry.resource_type}", [entry.where])
                target = matches[0] if matches else str(uuid.uuid4())
                if not matches:
                    made.append((entry.resource_type, target))
            elif entry.resource_id is not None:
                target = entry.resource_id
                named.append((entry.resource_type, target))
            else:
                matches = await self.repo.match_params(self.caller, entry.resource_type, entry.criteria, session,
                                                       limit=2)
                if len(matches) > 1:
                    raise FhirError(412, "multiple-matches", f"{entry.where}: conditional update matches more than one {entry.resource_type}", [entry.where])
                if matches:
                    target = matches[0]
                else:
                    claims.claim(self.repo.database.pending, session, entry.resource_type, entry.criteria)
                    target = (item.resource or {}).get("id") or ""
                    if target:
                        named.append((entry.resource_type, target))
                    else:
                        target = str(uuid.uuid4())
                        made.append((entry.resource_type, target))
            item.target_id = target
            if entry.full_url:
                identities[entry.full_url] = f"{entry.resource_type}/{target}"
            identities[f"{self.base}/{entry.resource_type}/{target}"] = f"{entry.resource_type}/{target}"
        await self.repo.look_ahead(session, made, new=True)
        await self.repo.look_ahead(session, named)
        return identities

    async def _execute(self, session: Session, item: Prepared, identities: dict[str, str]) -> dict[str, Any]:
        entry = item.entry
        repo, caller = self.repo, self.caller
        if entry.method == "DELETE":
            if entry.resource_id is not None:
                await repo.delete_in(session, caller, entry.resource_type, entry.resource_id)
            else:
                await repo.conditional_delete_in(session, caller, entry.resource_type, entry.criteria)
            return {"response": {"status": "204 No Content"}}
        if entry.method == "POST":
            assert item.resource is not None
            target = item.target_id or str(uuid.uuid4())
            existing = await repo.current(entry.resource_type, target, session) if entry.if_none_exist else None
            if existing is not None and not existing.deleted:
                return await self._written(WriteResult(existing, created=False, changed=False))
            if entry.if_none_exist:
                claims.claim(repo.database.pending, session, entry.resource_type, entry.if_none_exist)
            result = await repo.create_in(session, caller, item.resource, blob=item.blob, resource_id=target)
            return await self._written(result)
        if entry.method == "PUT":
            assert item.resource is not None
            target = item.target_id or str(uuid.uuid4())
            resource = {**item.resource, "id": target}
            result = await repo.update_in(session, caller, entry.resource_type, target, resource, blob=item.blob,
                                          if_match=parse_etag(entry.if_match))
            return await self._written(result)
        if entry.method == "PATCH":
            resource_id = entry.resource_id
            if resource_id is None:
                resource_id = await writing.match_one(repo, session, caller, entry.resource_type, entry.criteria)
            return await self._written(await writing.patch_in(repo, session, caller, entry.resource_type, resource_id,
                                                              item.patch, if_match=parse_etag(entry.if_match)))
        return await self._get(session, entry)

    async def _get(self, session: Session, entry: Entry) -> dict[str, Any]:
        assert entry.resource_id is not None, "searches go to the search interaction"
        if entry.version:
            found = await reading.vread(self.repo, self.caller, entry.resource_type, entry.resource_id, entry.version)
        else:
            found = await reading.read(self.repo, self.caller, entry.resource_type, entry.resource_id, session=session)
        stored = found.stored
        # A granular scope grants the resources matching its criteria: known once read.
        authorize(self.caller, entry_interaction(entry), entry.resource_type, resource=stored.resource, matcher=self.matcher)
        return {"resource": found.resource,
                "response": {"status": "200 OK", "etag": f'W/"{stored.version}"', "lastModified": stored.last_updated}}

    async def _written(self, result: WriteResult) -> dict[str, Any]:
        stored = result.stored
        status = "201 Created" if result.created else "200 OK"
        out: dict[str, Any] = {
            "fullUrl": f"{self.base}/{stored.resource_type}/{stored.id}",
            "response": {
                "status": status,
                "location": f"{stored.resource_type}/{stored.id}/_history/{stored.version}",
                "etag": f'W/"{stored.version}"',
                "lastModified": stored.last_updated,
            },
        }
        if self.dry_run:
            # What would be stored and how (a dry run answers with it: fhir_server.ingest.dry_run).
            out["resource"] = stored.resource
            out["response"]["outcome"] = dry_run.action(result.created, result.changed)
        elif self.return_resources:
            resource = await outgoing(self.repo, self.caller, stored, with_data=False)
            if resource is not None:
                out["resource"] = resource
        return out

    # ------------------------------------------------------------------ batch
    async def batch(self, entries: list[Entry]) -> dict[str, Any]:
        responses = []
        for entry in entries:
            try:
                responses.append(await self._batch_entry(entry))
            except FhirError as error:
                responses.append({"response": {"status": f"{error.status}", "outcome": operation_outcome(error.issues)}})
        return {"resourceType": "Bundle", "type": "batch-response", "entry": responses}

    async def _batch_entry(self, entry: Entry) -> dict[str, Any]:
        if entry.is_search:
            self._authorize(entry)
            bundle = await self.search.search(self.caller, entry.resource_type or None, entry.criteria, base_url=self.base,
                                              strict=False)
            return {"resource": bundle, "response": {"status": "200 OK"}}
        prepared = await self._prepare(entry)
        if entry.method in ("GET", "HEAD"):
            return await self._get(None, entry)

        async def work(session: Session) -> dict[str, Any]:
            prepared.resource = prepared.checked
            identities = await self._identities(session, [prepared])
            if prepared.resource is not None:
                prepared.resource = await ReferenceRewriter(self.repo, self.caller, session, identities).rewrite(
                    prepared.resource, entry.where)
            return await self._execute(session, prepared, identities)

        await self.repo.ready([entry.resource_type])
        return await _retried(lambda: self.repo.in_transaction(work), entry.where)


class TransactionService:
    """What the ingest adapters (CDA, HL7 v2) store through, for their caller: a transaction Bundle
    in, its transaction-response out, with the same checks and atomicity as `POST /fhir`."""

    def __init__(self, repository: Repository, search: SearchInteraction, caller: Caller, *, dry_run: bool = False) -> None:
        self.repository = repository
        self.search = search
        self.caller = caller
        # Transactions run whole and are rolled back (BundleProcessor.dry_run); each entry's
        # answer carries the resource as it would have been stored.
        self.dry_run = dry_run

    async def transaction(self, bundle: dict[str, Any], contents: Mapping[str, bytes] | None = None) -> dict[str, Any]:
        """`contents`: the bytes of the bundle's Binaries the adapter holds, by fullUrl (those
        entries need no `data`; one that has it must hold their base64)."""
        return await BundleProcessor(self.repository, self.search, self.caller, "", return_resources=False,
                                     dry_run=self.dry_run, contents=contents).process(bundle)

    async def find_current(self, resource_type: str, resource_id: str) -> Any:
        return await self.repository.current(resource_type, resource_id, None)

    @property
    def facilities(self) -> Remembered:
        """The sending facilities found lately (fhir_server.facilities)."""
        return self.repository.facilities

    async def find_by_identifier(self, resource_type: str, token: str) -> list[dict[str, Any]]:
        """Current resources with that identifier (`system|value`): the adapters' lookups of what
        the record already holds (sending facilities, patients, replaced documents)."""
        found = [await self.repository.current(resource_type, i, None)
                 for i in await self.repository.ids(resource_type, [("identifier", token)], None, 10)]
        return [s.resource for s in found if s is not None and not s.deleted and s.resource]
