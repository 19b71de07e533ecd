"""Bulk export jobs run in the background by one process at a time: the one holding the `export`
lease (fhir_server.storage.leases, as the dispatcher and the scheduler hold theirs).

A job is read through the repository's Reader of the client that asked, opened on no named
record: the same conditions its searches get, so an establishment's system exports its own
deposits and a full-access system everything (docs/ACCESS-RULES.md). Each type is read by pages
of `PAGE` documents in id order (a keyset on `sid`, the indexed copy of the id, which the embedded
store ranges on by its index where it scans for `_id`: each page starts after the last id of the
previous one, nothing is skipped or read twice), each resource leaves through `outgoing` (the read hook,
Binary bytes), and its NDJSON line goes to a chunk buffer written to the store at about 1 MiB:
memory holds one page and one chunk whatever the export's size.

Between pages the runner renews its lease and writes its progress on the job, only while the job
is still its attempt: a cancellation (the job deleted) or a take-over stops it there. A process
that dies mid-job leaves it `in-progress`; the next lease holder runs it again from the start
(its files are dropped first). Completed jobs expire after the retention (FHIR_EXPORT_RETENTION_HOURS),
when the lease holder deletes them and their files.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import orjson

from fhir_server.config import Settings
from fhir_server.errors import Issue, operation_outcome
from fhir_server.export.jobs import CHUNK_BYTES, ExportJobs, caller_from
from fhir_server.interactions.output import outgoing
from fhir_server.security.callers import Caller
from fhir_server.storage.documents import from_current
from fhir_server.storage.leases import Lease, in_rounds, stop_rounds
from fhir_server.storage.repository import Reader, Repository
from fhir_server.timefmt import format_instant, instant, now_instant

log = logging.getLogger("fhir_server.export")
LEASE_ID = "export"
LEASE_SECONDS = 30.0
# Documents read per store query: large enough that a page's query costs little per resource.
PAGE = 1000
# A group's patients are read this many at a time: an `$in` short enough to stay targeted.
PATIENTS_PER_QUERY = 20


class Stopped(Exception):
    """The job was cancelled or taken over: this attempt writes nothing more."""


def selections(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The store conditions choosing the job's resources of a type, beside the type itself."""
    if job["level"] == "system":
        return [{}]
    if job["level"] == "patient":
        return [{"pat": {"$ne": None}}]
    members: list[str] = job["patients"]
    out: list[dict[str, Any]] = []
    for start in range(0, len(members), PATIENTS_PER_QUERY):
        part = members[start:start + PATIENTS_PER_QUERY]
        out.append({"pat": part[0] if len(part) == 1 else {"$in": part}})
    return out


def since_condition(since: str | None, until: str) -> dict[str, Any]:
    """Updated after `_since` (if any) and not after the export's transactionTime."""
    bounds: dict[str, Any] = {"$lte": instant(until)}
    if since is not None:
        bounds["$gt"] = instant(format_instant(datetime.fromisoformat(since)))
    return {"ts": bounds}


class NdjsonFile:
    """One output file, written to the store a chunk at a time."""

    def __init__(self, jobs: ExportJobs, job: dict[str, Any], file_no: int, resource_type: str) -> None:
        self.jobs = jobs
        self.job = job
        self.file_no = file_no
        self.resource_type = resource_type
        self.buffer = bytearray()
        self.count = 0
        self.size = 0
        self.chunks = 0

    async def add(self, line: bytes) -> None:
        self.buffer += line
        self.count += 1
        if len(self.buffer) >= CHUNK_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if not self.buffer:
            return
        await self.jobs.write_chunk(self.job["_id"], self.job["attempt"], self.file_no, self.chunks, bytes(self.buffer))
        self.size += len(self.buffer)
        self.chunks += 1
        self.buffer = bytearray()

    def described(self) -> dict[str, Any]:
        return {"type": self.resource_type, "file": self.file_no, "count": self.count, "bytes": self.size,
                "chunks": self.chunks}


class Exporter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lease: Lease | None = None
        self._repository: Repository | None = None
        self.jobs: ExportJobs | None = None

    async def start(self, repository: Repository) -> None:
        self._repository = repository
        self.jobs = ExportJobs(repository.database)
        await self.jobs.ensure_indexes()
        self._lease = Lease(repository.database, LEASE_ID)
        self._task = asyncio.create_task(in_rounds(self._wake, self._round, self.settings.export_poll_seconds, log,
                                                   "export round"), name="bulk-export")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is None or self._lease is None:
            return
        await stop_rounds(self._task, self._lease, LEASE_SECONDS, log, "export")

    async def _round(self) -> None:
        assert self._lease is not None and self.jobs is not None
        if not await self._held():
            return
        for job in await self.jobs.expired(time.time()):
            await self.jobs.remove(job)
        while (job := await self.jobs.due()) is not None:
            await self.run(job)

    async def _held(self) -> bool:
        """Whether this process holds the lease: renewed in the store once a third of it has run."""
        assert self._lease is not None
        return self._lease.fresh(LEASE_SECONDS / 3) or await self._lease.hold(LEASE_SECONDS)

    async def _renew(self, job: dict[str, Any], progress: str) -> None:
        assert self.jobs is not None
        if not await self._held():
            raise Stopped("lease lost")
        if not await self.jobs.update(job["_id"], job["attempt"], {"progress": progress}):
            raise Stopped("cancelled")

    async def run(self, job: dict[str, Any]) -> None:
        """One attempt at a job: every file written, then the job completed; or stopped."""
        assert self.jobs is not None and self._repository is not None
        attempt = job["attempt"] + 1
        started = now_instant()
        if not await self.jobs.update(job["_id"], job["attempt"], {"state": "in-progress", "attempt": attempt,
                                                                     "transactionTime": started,
                                                                     "progress": "started"}):
            return
        job = {**job, "attempt": attempt, "transactionTime": started}
        await self.jobs.drop_files(job["_id"])
        caller = caller_from(job["caller"])
        reader = await self._repository.reader(caller).open(None)
        output: list[dict[str, Any]] = []
        errors = NdjsonFile(self.jobs, job, len(job["types"]), "OperationOutcome")
        total = 0
        try:
            for file_no, rtype in enumerate(job["types"]):
                written = await self._type(job, caller, reader, NdjsonFile(self.jobs, job, file_no, rtype), errors,
                                           f"{file_no}/{len(job['types'])} types, {total} resources")
                total += written.count
                if written.count:
                    output.append(written.described())
            await errors.flush()
        except Stopped:
            if await self.jobs.get(job["_id"]) is None:
                # Cancelled: what this attempt wrote after the cancellation goes too.
                await self.jobs.drop_files(job["_id"])
            return
        expires = time.time() + self.settings.export_retention_hours * 3600
        done = await self.jobs.complete(job, {"output": output, "error": [errors.described()] if errors.count else [],
                                              "expires": expires, "progress": f"{total} resources"})
        if done:
            log.info("export %s completed: %d resources in %d files", job["_id"], total, len(output))

    async def _type(self, job: dict[str, Any], caller: Caller, reader: Reader, out: NdjsonFile, errors: NdjsonFile,
                    progress: str) -> NdjsonFile:
        assert self._repository is not None
        rtype = out.resource_type
        when = since_condition(job.get("since"), job["transactionTime"])
        for selection in selections(job):
            last: str | None = None
            while True:
                query: dict[str, Any] = {**selection, **when, "del": False}
                if last is not None:
                    query["sid"] = {"$gt": last}
                docs = await reader.find(rtype, query, {"ix": 0, "sk": 0}, sort=[("sid", 1)], limit=PAGE)
                for doc in docs:
                    stored = from_current(rtype, doc)
                    try:
                        resource = await outgoing(self._repository, caller, stored)
                    except Exception as exc:  # noqa: BLE001 - one resource's failure is reported, the export goes on
                        log.exception("export %s: %s/%s not exported", job["_id"], rtype, stored.id)
                        outcome = operation_outcome([Issue("error", "exception",
                                                           f"{rtype}/{stored.id} could not be exported: "
                                                           f"{exc.__class__.__name__}")])
                        await errors.add(orjson.dumps(outcome) + b"\n")
                        continue
                    if resource is not None:
                        await out.add(orjson.dumps(resource) + b"\n")
                await self._renew(job, f"{progress}; {rtype}: {out.count}")
                if len(docs) < PAGE:
                    break
                last = docs[-1]["sid"]
        await out.flush()
        return out
