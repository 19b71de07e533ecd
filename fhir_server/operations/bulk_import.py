"""`POST [base]/$import`: many resources in one request, as FHIR NDJSON (one resource a line,
`application/fhir+ndjson`, gzip optional), for a depositor loading a whole population at once,
the insurer's reimbursements first (docs/RECORD-CONTENTS.md, item d).

The operation's name is the one HAPI FHIR, Azure and the Bulk Data import draft use for loading
NDJSON; those pull files from URLs named in a Parameters body, this one takes the lines in the
request body itself ("push"), so no file has to be reachable from the server.

Each line is what a create of it would be: the caller's scopes, the type's checks and validation
(`Repository.prepare`), the record's rules and the record-write hooks, the same stored documents.
Lines are written `BATCH` at a time, in one store transaction each (`Repository.write_many`). A
refused line is reported with its number and why, and nothing of it is stored; the other lines
are. The answer is an OperationOutcome: the count of lines stored, unchanged and refused, then one
issue per refused line.

A resource's id is the server's: for a line with an identifier, keyed by that identifier (its
first with a system and a value) and the caller, with a server secret, so the same line sent again
finds its resource (unchanged, or a new version) and a later line with the same identifier is a
new version of it; a line without identifier is a new resource each time. An `id` in the line is
ignored, as in a create.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_server.errors import FhirError, Issue, operation_outcome
from fhir_server.security.callers import Caller
from fhir_server.security.scopes import Matcher, authorize
from fhir_server.storage.repository import Repository, WriteResult

NDJSON_TYPES = ("application/fhir+ndjson", "application/ndjson", "application/x-ndjson")
# Lines per store transaction: large enough that a round trip carries many documents.
BATCH = 1000
# Refused lines described one by one in the answer, at most; the rest are counted.
MAX_LISTED = 1000
# Binary content goes with its bytes, through `POST /Binary` (fhir_server.storage.binaries).
NOT_IMPORTED = ("Binary",)


@dataclass
class Summary:
    lines: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    # The first MAX_LISTED refused lines by number (a heap on -number: its top is the last kept);
    # refusals arrive out of order, those of a batch once the store has written it.
    listed: list[tuple[int, FhirError]] = field(default_factory=list)

    def refuse(self, number: int, error: FhirError) -> None:
        self.refused += 1
        heapq.heappush(self.listed, (-number, error))
        if len(self.listed) > MAX_LISTED:
            heapq.heappop(self.listed)

    def outcome(self, fatal: FhirError | None = None) -> dict[str, Any]:
        stored = self.created + self.updated
        issues = [Issue("information", "informational",
                        f"{self.lines} lines read: {stored} stored ({self.created} created, {self.updated} updated), "
                        f"{self.unchanged} unchanged, {self.refused} refused")]
        if fatal is not None:
            issues += [Issue("fatal", i.code, f"The import stopped after line {self.lines}: {i.diagnostics}")
                       for i in fatal.issues]
        for negative, error in sorted(self.listed, key=lambda entry: -entry[0]):
            issues += [Issue("error", i.code, f"Line {-negative} (refused, {error.status}): {i.diagnostics}",
                             i.expression) for i in error.issues]
        if self.refused > len(self.listed):
            issues.append(Issue("error", "too-costly", f"{self.refused - len(self.listed)} more refused lines not listed"))
        return operation_outcome(issues)


async def ndjson_lines(chunks: AsyncIterator[bytes], gzipped: bool, max_line: int) -> AsyncIterator[tuple[int, bytes]]:
    """(line number, line) for each non-blank line; FhirError 400 when the body is not readable
    (bad gzip), 413 for a line longer than `max_line` bytes."""
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzipped else None
    # The line being read, in the pieces it came in: each byte is looked at once, however long the line.
    parts: list[bytes] = []
    size = 0
    number = 0
    async for chunk in chunks:
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk)
            except zlib.error as exc:
                raise FhirError(400, "structure", f"The body is not valid gzip: {exc}") from None
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            line = b"".join([*parts, chunk[start:end]])
            parts, size, start = [], 0, end + 1
            number += 1
            if line.strip():
                yield number, line
        if start < len(chunk):
            parts.append(chunk[start:])
            size += len(chunk) - start
        if size > max_line:
            raise FhirError(413, "too-costly", f"Line {number + 1} is over the limit of {max_line} bytes")
    if inflate is not None and not inflate.eof:
        raise FhirError(400, "structure", "The gzip body ends before its end")
    line = b"".join(parts)
    if line.strip():
        yield number + 1, line


class Importer:
    def __init__(self, repository: Repository, caller: Caller, matcher: Matcher, secret: bytes) -> None:
        self.repository = repository
        self.caller = caller
        self.matcher = matcher
        self.secret = secret
        self.summary = Summary()
        self.batch: list[tuple[int, str, dict[str, Any]]] = []
        self.batch_ids: set[str] = set()
        # The batch the store is writing while the next one is checked (one at a time, in order).
        self.writing: asyncio.Task[None] | None = None
        # Types the caller's scopes let it create whatever the resource (no granular criteria).
        self.granted: set[str] = set()

    async def run(self, lines: AsyncIterator[tuple[int, bytes]]) -> Summary:
        try:
            async for number, line in lines:
                self.summary.lines = number
                try:
                    resource_id, resource = self.prepare(line)
                except FhirError as exc:
                    self.summary.refuse(number, exc)
                    continue
                if resource_id in self.batch_ids or len(self.batch) >= BATCH:
                    # A second line for the same resource is a new version of it: the first is written first.
                    await self.flush()
                self.batch.append((number, resource_id, resource))
                self.batch_ids.add(resource_id)
        finally:
            # Lines read before the body broke off are written like the others.
            await self.flush()
            await self.settle()
        return self.summary

    def prepare(self, line: bytes) -> tuple[str, dict[str, Any]]:
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FhirError(400, "structure", f"not a JSON resource: {exc}") from None
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        if rtype in NOT_IMPORTED:
            raise FhirError(400, "not-supported", f"{rtype} is written with its content through POST /{rtype}")
        if isinstance(rtype, str):
            self.repository.check_type(rtype)
            self.authorize(rtype, resource)
        resource = self.repository.prepare(self.caller, resource)
        return self.resource_id(resource), resource

    def resource_id(self, resource: dict[str, Any]) -> str:
        for identifier in resource.get("identifier") or []:
            if isinstance(identifier, dict) and isinstance(identifier.get("system"), str) \
                    and isinstance(identifier.get("value"), str):
                key = "|".join((self.caller.kind, self.caller.id, resource["resourceType"], identifier["system"],
                                identifier["value"]))
                return str(uuid.UUID(bytes=hmac.new(self.secret, key.encode(), hashlib.sha256).digest()[:16]))
        return str(uuid.uuid4())

    def authorize(self, rtype: str, resource: dict[str, Any]) -> None:
        if rtype in self.granted:
            return
        try:
            # Without a resource, only a scope with no criteria grants a create.
            authorize(self.caller, "create", rtype)
            self.granted.add(rtype)
        except FhirError:
            authorize(self.caller, "create", rtype, resource=resource, matcher=self.matcher)

    async def flush(self) -> None:
        """Hand the batch to the store, once the one before is written, and go on checking lines:
        the store writes while the server validates (docs/PERFORMANCE.md)."""
        await self.settle()
        if not self.batch:
            return
        batch, self.batch, self.batch_ids = self.batch, [], set()
        self.writing = asyncio.create_task(self.write(batch))

    async def settle(self) -> None:
        if self.writing is not None:
            writing, self.writing = self.writing, None
            await writing

    async def write(self, batch: list[tuple[int, str, dict[str, Any]]]) -> None:
        results = await self.repository.write_many(self.caller, [(rid, resource) for _, rid, resource in batch])
        for (number, _, _), result in zip(batch, results, strict=True):
            self._count(number, result)

    def _count(self, number: int, result: WriteResult | FhirError) -> None:
        if isinstance(result, FhirError):
            self.summary.refuse(number, result)
        elif not result.changed:
            self.summary.unchanged += 1
        elif result.created:
            self.summary.created += 1
        else:
            self.summary.updated += 1
