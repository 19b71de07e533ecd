"""Bulk export jobs and their files, kept in the store so that any server process (on any
machine sharing the store) answers a status poll, a download or a cancellation, whichever
process runs the job.

Collection `export_jobs` holds two kinds of documents:
- a job (`kind: "job"`): who asked (`owner`, and the caller as it was, to run the job with its
  access rules), what (level, group members, types, `_since`), its state (`accepted`,
  `in-progress`, `completed`), progress, and once completed its manifest parts and expiry;
- a client's slot (`_id: "slot:<owner>"`): inserted at kick-off, removed when the job completes,
  is cancelled or expires; its unique `_id` is the limit of one running export per client,
  atomic on both stores.

Collection `export_files` holds the NDJSON files as chunks of about `CHUNK_BYTES`, `_id`
`<job>/<file>/<n>`: written as the job pages through the store, read back one by one by `_id` for a
download, so neither side holds a file in memory; deleted with their job (cancellation, expiry).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from fhir_server.security.callers import Caller
from fhir_server.security.scopes import Scopes
from fhir_server.storage.database import Database, create_indexes

JOBS = "export_jobs"
FILES = "export_files"
ACCEPTED, RUNNING, COMPLETED = "accepted", "in-progress", "completed"
CHUNK_BYTES = 1024 * 1024
# The runner finds waiting jobs by state; a download and a cancel find a job's files (mongo-setup
# creates them too, fhir_server.storage.mongo_setup).
INDEXES = {JOBS: [IndexModel([("state", ASCENDING)], name="i_state")],
           FILES: [IndexModel([("job", ASCENDING)], name="i_job")]}


def owner_of(caller: Caller) -> str:
    """Who a job belongs to: the client (or the platform) as its token names it."""
    return "|".join((caller.kind, caller.issuer, caller.client_id or "", caller.organization or "", caller.id))


def caller_document(caller: Caller) -> dict[str, Any]:
    """The caller as stored with its job, so the job runs under the same access rules."""
    fields = asdict(caller)
    fields["scopes"] = str(caller.scopes)
    fields["audiences"] = sorted(caller.audiences)
    return fields


def caller_from(document: dict[str, Any]) -> Caller:
    fields = dict(document)
    fields["scopes"] = Scopes.parse(fields["scopes"])
    fields["audiences"] = frozenset(fields["audiences"])
    return Caller(**fields)


def _slot(owner: str) -> str:
    return f"slot:{owner}"


class ClientBusy(Exception):
    """The client already has an export accepted or running."""


class ExportJobs:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.jobs = database.collection(JOBS)
        self.files = database.collection(FILES)

    async def ensure_indexes(self) -> None:
        await create_indexes(self.jobs, INDEXES[JOBS])
        await create_indexes(self.files, INDEXES[FILES])

    async def create(self, caller: Caller, request: dict[str, Any]) -> str:
        """A new job for `caller` (ClientBusy while it has one running)."""
        owner = owner_of(caller)
        job_id = uuid.uuid4().hex
        async with self.database.gate.write(exclude_readers=False):
            try:
                await self.jobs.insert_one({"_id": _slot(owner), "kind": "slot", "job": job_id})
            except DuplicateKeyError:
                raise ClientBusy(owner) from None
            await self.jobs.insert_one({"_id": job_id, "kind": "job", "owner": owner, "caller": caller_document(caller),
                                        "state": ACCEPTED, "created": time.time(), "progress": "accepted",
                                        "attempt": 0, **request})
        return job_id

    async def get(self, job_id: str, caller: Caller | None = None) -> dict[str, Any] | None:
        """The job, None when there is none or (with `caller`) it is another client's."""
        async with self.database.gate.read():
            job = await self.jobs.find_one({"_id": job_id, "kind": "job"})
        if job is None or (caller is not None and job["owner"] != owner_of(caller)):
            return None
        return job

    async def due(self) -> dict[str, Any] | None:
        """The oldest job not completed: accepted, or left running by a process that stopped."""
        for state in (RUNNING, ACCEPTED):
            async with self.database.gate.read():
                found = await self.jobs.find({"state": state, "kind": "job"}).sort("created", 1).limit(1).to_list(1)
            if found:
                return found[0]
        return None

    async def update(self, job_id: str, attempt: int | None, changes: dict[str, Any]) -> bool:
        """Set `changes` on the job, only while it is still that attempt (not cancelled, not taken over)."""
        where: dict[str, Any] = {"_id": job_id}
        if attempt is not None:
            where["attempt"] = attempt
        async with self.database.gate.write(exclude_readers=False):
            done = await self.jobs.update_one(where, {"$set": changes})
        return done.matched_count == 1

    async def complete(self, job: dict[str, Any], changes: dict[str, Any]) -> bool:
        """The job's manifest parts are set and its client's slot is freed."""
        if not await self.update(job["_id"], job["attempt"], {**changes, "state": COMPLETED}):
            return False
        async with self.database.gate.write(exclude_readers=False):
            await self.jobs.delete_one({"_id": _slot(job["owner"]), "job": job["_id"]})
        return True

    async def remove(self, job: dict[str, Any]) -> None:
        """The job, its files and its slot are gone (a cancellation, an expiry)."""
        async with self.database.gate.write(exclude_readers=False):
            await self.jobs.delete_one({"_id": job["_id"]})
            await self.jobs.delete_one({"_id": _slot(job["owner"]), "job": job["_id"]})
            await self.files.delete_many({"job": job["_id"]})

    async def expired(self, now: float) -> list[dict[str, Any]]:
        async with self.database.gate.read():
            return await self.jobs.find({"state": COMPLETED, "kind": "job", "expires": {"$lt": now}}).to_list(None)

    async def drop_files(self, job_id: str) -> None:
        async with self.database.gate.write(exclude_readers=False):
            await self.files.delete_many({"job": job_id})

    async def write_chunk(self, job_id: str, attempt: int, file_no: int, n: int, data: bytes) -> None:
        async with self.database.gate.write(exclude_readers=False):
            await self.files.insert_one({"_id": f"{job_id}/{file_no}/{n}", "job": job_id, "attempt": attempt,
                                         "data": data})

    async def read_file(self, job_id: str, file_no: int, chunks: int) -> AsyncIterator[bytes]:
        """A file's bytes, one chunk at a time."""
        for n in range(chunks):
            async with self.database.gate.read():
                doc = await self.files.find_one({"_id": f"{job_id}/{file_no}/{n}"}, {"data": 1})
            if doc is None:
                # Cancelled or expired while being read: the download ends short.
                return
            yield bytes(doc["data"])
