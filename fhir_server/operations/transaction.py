"""Batch and transaction Bundles (FHIR R4 http.html#transaction).

A transaction runs every entry in one store transaction: on any failure nothing of it stays.
Entries run in the spec's order (DELETE, POST, PUT/PATCH, GET); `urn:uuid:` fullUrls and
conditional references (`Patient?identifier=...`, exactly one match) are resolved first.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_server.errors import FhirError, operation_outcome
from fhir_server.etag import parse_etag
from fhir_server.operations.bundle_entries import Entry, parse_bundle
from fhir_server.mhd import cda_metadata, provide_bundle
from fhir_server.search.request import parse_request
from fhir_server.search.searchset import searchset
from fhir_server.storage.repository import Repository, Session, WriteResult, check_id

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Prepared:
    entry: Entry
    resource: dict[str, Any] | None = None
    blob: dict[str, Any] | None = None
    patch: Any = None
    target_id: str | None = None
    response: dict[str, Any] = field(default_factory=dict)


def _patch_document(entry: Entry) -> Any:
    resource = entry.resource or {}
    if resource.get("resourceType") == "Binary" and resource.get("contentType", "").startswith("application/json-patch+json"):
        try:
            return orjson.loads(base64.b64decode(resource.get("data", "")))
        except (binascii.Error, orjson.JSONDecodeError) as exc:
            raise FhirError(400, "invalid", f"{entry.where}: the JSON Patch is not base64 JSON", [entry.where]) from exc
    raise FhirError(400, "not-supported", f"{entry.where}: PATCH entries take a Binary holding a JSON Patch", [entry.where])


class BundleProcessor:
    def __init__(self, repository: Repository, base_url: str, *, return_resources: bool, document_publication: bool = False) -> None:
        self.repo = repository
        self.base = base_url.rstrip("/")
        self.return_resources = return_resources
        # ITI-105 builds its own bundle: it gets the ITI-65 checks without carrying a SubmissionSet.
        self.document_publication = document_publication

    async def process(self, bundle: Any) -> dict[str, Any]:
        kind, entries = parse_bundle(bundle, self.base)
        if kind == "transaction":
            return await self.transaction(entries)
        return await self.batch(entries)

    # ------------------------------------------------------------------ preparation (outside the store)
    async def _prepare(self, entry: Entry) -> Prepared:
        prepared = Prepared(entry)
        self.repo.check_type(entry.resource_type)
        if entry.method in ("POST", "PUT"):
            try:
                resource = self.repo.prepare(entry.resource, entry.resource_type)
            except FhirError as error:
                for issue in error.issues:
                    issue.expression = [f"{entry.where}.resource.{e.split('.', 1)[-1]}" for e in issue.expression] or [entry.where]
                raise
            if entry.method == "PUT" and entry.resource_id is not None:
                check_id(entry.resource_id)
                resource = {**resource, "id": resource.get("id", entry.resource_id)}
                if resource["id"] != entry.resource_id:
                    raise FhirError(400, "invalid", f"{entry.where}: resource id '{resource['id']}' differs from the url's '{entry.resource_id}'", [entry.where])
            prepared.resource, prepared.blob = await self.repo.stash_binary(resource, None)
        elif entry.method == "PATCH":
            prepared.patch = _patch_document(entry)
        elif entry.method == "DELETE" and entry.resource_id is None and not entry.criteria:
            raise FhirError(400, "invalid", f"{entry.where}: DELETE needs an id or criteria", [entry.where])
        return prepared

    # ------------------------------------------------------------------ transaction
    async def transaction(self, entries: list[Entry]) -> dict[str, Any]:
        if provide_bundle.is_provide_bundle([e.resource for e in entries]):
            cda_metadata.complete(entries)
        prepared = [await self._prepare(e) for e in entries]
        full_urls = [p.entry.full_url for p in prepared if p.entry.full_url]
        if len(full_urls) != len(set(full_urls)):
            raise FhirError(400, "invalid", "Two entries of the transaction share a fullUrl")
        writes = any(p.entry.method not in ("GET", "HEAD") for p in prepared)

        async def work(session: Session) -> None:
            identities = await self._identities(session, prepared)
            for item in prepared:
                if item.resource is not None:
                    item.resource = await self._resolve_references(session, item, item.resource, identities)
            if self.document_publication or provide_bundle.is_provide_bundle([p.resource for p in prepared]):
                await provide_bundle.check(self.repo, session, prepared)
            for item in sorted(prepared, key=lambda p: ORDER[p.entry.method]):
                try:
                    item.response = await self._execute(session, item, identities)
                except FhirError as error:
                    for issue in error.issues:
                        issue.diagnostics = f"{item.entry.where} ({item.entry.method} {item.entry.resource_type}): {issue.diagnostics}"
                        issue.expression = issue.expression or [item.entry.where]
                    raise

        if writes:
            await self.repo.ready({p.entry.resource_type for p in prepared})
            await self.repo.database.in_transaction(work, exclude_readers=True)
        else:
            await work(None)
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": [p.response for p in prepared]}

    async def _identities(self, session: Session, prepared: list[Prepared]) -> dict[str, str]:
        """fullUrl -> `Type/id` of what each entry will create or update."""
        identities: dict[str, str] = {}
        for item in prepared:
            entry = item.entry
            if entry.method not in ("POST", "PUT"):
                continue
            if entry.method == "POST":
                if entry.if_none_exist:
                    matches = await self.repo.match(entry.resource_type, entry.if_none_exist, session, limit=2)
                    if len(matches) > 1:
                        raise FhirError(412, "duplicate", f"{entry.where}: ifNoneExist matches more than one {entry.resource_type}", [entry.where])
                    target = matches[0] if matches else str(uuid.uuid4())
                else:
                    target = str(uuid.uuid4())
            elif entry.resource_id is not None:
                target = entry.resource_id
            else:
                matches = await self.repo.match_params(entry.resource_type, entry.criteria, session, limit=2)
                if len(matches) > 1:
                    raise FhirError(412, "multiple-matches", f"{entry.where}: conditional update matches more than one {entry.resource_type}", [entry.where])
                target = matches[0] if matches else (item.resource or {}).get("id") or str(uuid.uuid4())
            item.target_id = target
            if entry.full_url:
                identities[entry.full_url] = f"{entry.resource_type}/{target}"
            identities[f"{self.base}/{entry.resource_type}/{target}"] = f"{entry.resource_type}/{target}"
        return identities

    async def _resolve_references(
        self, session: Session, item: Prepared, value: Any, identities: dict[str, str]
    ) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, child in value.items():
                if key == "reference" and isinstance(child, str):
                    out[key] = await self._reference(session, item, child, identities)
                else:
                    out[key] = await self._resolve_references(session, item, child, identities)
            return out
        if isinstance(value, list):
            return [await self._resolve_references(session, item, v, identities) for v in value]
        if isinstance(value, str) and value in identities and value.startswith("urn:"):
            # e.g. an attachment.url naming a Binary of the same bundle (IHE MHD ITI-65)
            return identities[value]
        return value

    async def _reference(self, session: Session, item: Prepared, reference: str, identities: dict[str, str]) -> str:
        if reference in identities:
            return identities[reference]
        if reference.startswith("urn:uuid:") or reference.startswith("urn:oid:"):
            raise FhirError(400, "not-found", f"{item.entry.where}: reference '{reference}' names no entry of the bundle", [item.entry.where])
        if "?" in reference:
            rtype, _, query = reference.partition("?")
            self.repo.check_type(rtype)
            matches = await self.repo.match(rtype, query, session, limit=2)
            if len(matches) != 1:
                found = "no" if not matches else "more than one"
                raise FhirError(412 if matches else 404, "not-found" if not matches else "multiple-matches",
                                f"{item.entry.where}: conditional reference '{reference}' matches {found} {rtype}", [item.entry.where])
            return f"{rtype}/{matches[0]}"
        return reference

    async def _execute(self, session: Session, item: Prepared, identities: dict[str, str]) -> dict[str, Any]:
        entry = item.entry
        repo = self.repo
        if entry.method == "DELETE":
            if entry.resource_id is not None:
                await repo.delete_in(session, entry.resource_type, entry.resource_id)
            else:
                await repo.conditional_delete_in(session, entry.resource_type, entry.criteria)
            return {"response": {"status": "204 No Content"}}
        if entry.method == "POST":
            assert item.resource is not None
            target = item.target_id or str(uuid.uuid4())
            existing = await repo.find_current(entry.resource_type, target, session) if entry.if_none_exist else None
            if existing is not None and not existing.deleted:
                return self._written(WriteResult(existing, created=False, changed=False))
            result = await repo.create_in(session, item.resource, blob=item.blob, resource_id=target)
            return self._written(result)
        if entry.method == "PUT":
            assert item.resource is not None
            target = item.target_id or str(uuid.uuid4())
            resource = {**item.resource, "id": target}
            result = await repo.update_in(session, entry.resource_type, target, resource, blob=item.blob,
                                          if_match=parse_etag(entry.if_match))
            return self._written(result)
        if entry.method == "PATCH":
            if entry.resource_id is None:
                matches = await repo.match_params(entry.resource_type, entry.criteria, session, limit=2)
                if len(matches) != 1:
                    raise FhirError(412, "multiple-matches", "conditional patch must match exactly one resource")
                entry.resource_id = matches[0]
            current = await repo.read(entry.resource_type, entry.resource_id, session)
            expected = parse_etag(entry.if_match)
            if expected is not None and expected != current.version:
                raise FhirError(412, "conflict", f"ifMatch version {expected} is not the current version ({current.version})")
            patched = repo.patched(current, item.patch)
            result = await repo.update_in(session, entry.resource_type, entry.resource_id, patched, if_match=current.version)
            return self._written(result)
        return await self._get(session, entry)

    async def _get(self, session: Session, entry: Entry) -> dict[str, Any]:
        if entry.resource_id is None:
            raise FhirError(400, "not-supported", f"{entry.where}: searches are supported in batch, not inside a transaction", [entry.where])
        if entry.version:
            stored = await self.repo.vread(entry.resource_type, entry.resource_id, entry.version)
        else:
            stored = await self.repo.read(entry.resource_type, entry.resource_id, session)
        resource = await self.repo.with_binary_data(stored) if stored.resource_type == "Binary" else stored.resource
        return {"resource": resource, "response": {"status": "200 OK", "etag": f'W/"{stored.version}"', "lastModified": stored.last_updated}}

    def _written(self, result: WriteResult) -> dict[str, Any]:
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
        if self.return_resources and stored.resource is not None:
            out["resource"] = stored.resource
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
        if entry.method in ("GET", "HEAD") and entry.resource_id is None:
            return await self._batch_search(entry)
        prepared = await self._prepare(entry)
        if entry.method in ("GET", "HEAD"):
            return await self._get(None, entry)

        async def work(session: Session) -> dict[str, Any]:
            identities = await self._identities(session, [prepared])
            if prepared.resource is not None:
                prepared.resource = await self._resolve_references(session, prepared, prepared.resource, identities)
            return await self._execute(session, prepared, identities)

        await self.repo.ready([entry.resource_type])
        return await self.repo.database.in_transaction(work)

    async def _batch_search(self, entry: Entry) -> dict[str, Any]:
        request = parse_request(entry.criteria)
        count = request.count or 20
        result = await self.repo.search(entry.resource_type, request, base_url=self.base, strict=False, count=count)
        bundle = searchset(self.base, entry.resource_type, request, result, count)
        return {"resource": bundle, "response": {"status": "200 OK"}}


class TransactionService:
    """What the ingest adapters (CDA, HL7 v2) store through: a transaction Bundle in, its
    transaction-response out, with the same checks and atomicity as `POST /fhir`."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository

    async def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        return await BundleProcessor(self.repository, "", return_resources=False).process(bundle)

    async def find_current(self, resource_type: str, resource_id: str) -> Any:
        return await self.repository.find_current(resource_type, resource_id)
