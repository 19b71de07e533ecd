"""The lifecycle scheduler (issue 14): the records whose next step is due (`lifecycle.due`, the
`due` key of the Patient's current document) take it, one process at a time (the `lifecycle`
lease in the store, as the outbox dispatcher and the mail worker hold theirs):

- pending → active six weeks after the notice, absent an objection (R.1111-28);
- closed → purged ten years after closure, or three months after a deletion request (R.1111-36);
- pending or active → closed when the person died (R.1111-36's closure), at once: the after-commit
  hook `Scheduler.committed` takes that step as soon as the write reporting the death commits.

Each step is one job, audited as the platform updating the Patient: one store transaction that reads the Patient again, writes its next
version as the platform, and (for a purge) empties the record in the same transaction
(`lifecycle.purge_when_purged`). A job that fails leaves the record as it was, due still, and the
next round tries again; a job run twice (a round here and `$lifecycle` there) finds nothing left
to do the second time. INVISIBLE_PATIENT's month needs no job: it is a `visible_from` date the
queries compare with now (../shared/DECISIONS.md, "Access rules").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel

from fhir_server.access.records import record_status
from fhir_server.audit import trace as tracing
from fhir_server.audit.events import Interaction, build
from fhir_server.audit.store import AuditUnavailable
from fhir_server.audit.writer import AuditWriter
from fhir_server.record.lifecycle import AT_ONCE, DUE, due, next_version
from fhir_server.record.purge import sweep_blobs
from fhir_server.security.callers import PLATFORM
from fhir_server.storage.database import create_indexes
from fhir_server.storage.leases import Lease, in_rounds, stop_rounds
from fhir_server.storage.repository import Repository, Session
from fhir_server.timefmt import instant, now, now_instant

log = logging.getLogger("fhir_server.lifecycle")
LEASE_ID = "lifecycle"
LEASE_SECONDS = 60.0
# Records read per query of a round.
BATCH = 200


@dataclass
class Round:
    """What one round did, as `$lifecycle` and the log tell it."""
    activated: int = 0
    purged: int = 0
    failed: int = 0
    swept: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"activated": self.activated, "purged": self.purged, "failed": self.failed, "swept": self.swept}


# What the round asks the store for (also made by `fhir-server mongo-setup`).
INDEXES = {"Patient": (IndexModel([(DUE, ASCENDING)], name="i_due"),)}


async def ensure_index(repository: Repository) -> None:
    for name, indexes in INDEXES.items():
        await create_indexes(repository.collection(name), indexes)


async def step(repository: Repository, patient_id: str) -> str | None:
    """The record's due step, in one transaction; the status it took, or None if nothing was due."""
    at = now()

    async def work(session: Session) -> str | None:
        current = await repository.current("Patient", patient_id, session)
        if current is None or current.deleted or current.resource is None:
            return None
        following = next_version(current.resource, at)
        if following is None:
            return None
        await repository.update_in(session, PLATFORM, "Patient", patient_id, following, for_server=True)
        return record_status(following)

    return await repository.run(work, ["Patient"])


async def audited_step(repository: Repository, patient_id: str, writer: AuditWriter | None) -> str | None:
    """`step`, with an AuditEvent of its own (the platform updating the Patient) when it runs
    outside a request; within one (`$lifecycle`), the request's own AuditEvent names what it wrote."""
    if writer is None:
        return await step(repository, patient_id)

    async def traced() -> str | None:
        started = now_instant()
        trace = tracing.begin()
        status = await step(repository, patient_id)
        if status is not None:
            try:
                await writer.write(build(Interaction("update", f"lifecycle Patient/{patient_id} {status}"), PLATFORM,
                                         200, trace, started, written_kept=True))
            except AuditUnavailable as exc:
                # The step is committed; the Patient's history still says who wrote what, and when.
                log.error("audit trail unavailable for the lifecycle step of Patient/%s: %s", patient_id, exc)
        return status

    # A task of its own, so its trace is the current one there only (the after-commit hook's
    # caller goes on with its own context).
    return await asyncio.create_task(traced())


async def run_round(repository: Repository, writer: AuditWriter | None = None) -> Round:
    """Every record due now takes its step; a record whose job fails is logged and left due."""
    done = Round()
    upto = instant(now_instant())
    after = ""
    while True:
        # By id, so a record that failed is not asked for again in this round.
        found = await repository.reader(None).find("Patient", {DUE: {"$lte": upto}, "sid": {"$gt": after},
                                                               "del": False}, {"_id": 1}, sort=[("sid", 1)],
                                                   limit=BATCH)
        for doc in found:
            try:
                status = await audited_step(repository, doc["_id"], writer)
            except Exception:  # noqa: BLE001 - one record's failure must not hold up the others
                log.exception("lifecycle step of Patient/%s failed; retried next round", doc["_id"])
                done.failed += 1
                continue
            done.activated += status == "active"
            done.purged += status == "purged"
        if len(found) < BATCH:
            break
        after = found[-1]["_id"]
    done.swept = await sweep_blobs(repository)
    if done.activated or done.purged or done.failed:
        log.info("lifecycle round: %s", done.as_dict())
    return done


class Scheduler:
    def __init__(self, every: float) -> None:
        self.every = every
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lease: Lease | None = None
        self._repository: Repository | None = None
        self._writer: AuditWriter | None = None

    async def start(self, repository: Repository, writer: AuditWriter) -> None:
        self._repository = repository
        self._writer = writer
        self._lease = Lease(repository.database, LEASE_ID)
        await ensure_index(repository)
        self._task = asyncio.create_task(in_rounds(self._wake, self._round, self.every, log, "lifecycle round"),
                                         name="lifecycle-scheduler")

    async def stop(self) -> None:
        if self._task is None or self._lease is None:
            return
        await stop_rounds(self._task, self._lease, LEASE_SECONDS, log, "lifecycle")

    async def committed(self, event: dict[str, Any]) -> None:
        """After a Patient write: a step due at once (a death) is taken now, not at the next round."""
        rid = event.get("rid") or ""
        if event.get("kind") != "write" or not rid.startswith("Patient/") or event.get("method") == "DELETE" \
                or self._repository is None:
            return
        patient_id = rid.split("/", 1)[1]
        current = await self._repository.current("Patient", patient_id, None)
        if current is not None and not current.deleted and due(current.resource) == AT_ONCE:
            await audited_step(self._repository, patient_id, self._writer)

    async def _round(self) -> int:
        """How many records took a step (or failed to)."""
        assert self._lease is not None and self._repository is not None
        # A round may outlast the lease on a large backlog: the jobs are idempotent, so a process
        # taking over meanwhile only finds some of them done.
        if not await self._lease.hold(max(LEASE_SECONDS, self.every * 2)):
            return 0
        done = await run_round(self._repository, self._writer)
        return done.activated + done.purged + done.failed
