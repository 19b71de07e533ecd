"""Emptying a record, in the transaction of the Patient version that empties it: an objection
(status `opposed`, ../shared/DECISIONS.md "Record lifecycle") and the purge at the end of the
archive or after a deletion request (status `purged`, R.1111-36) remove everything of the record
but its Patient, current and past versions, and the bytes no other version shares; AuditEvents
live in the audit store and stay. One transaction, so a record is never half-emptied: a failure
leaves it whole and the next attempt starts again.

Bytes kept in GridFS cannot be removed inside a store transaction (the embedded store's GridFS
takes the writer gate a transaction already holds): the transaction marks them in `job_marks`,
and `sweep_blobs` removes them once no version names them (the scheduler's round, after its
transitions), so a failure between the two only delays the sweep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_server.access.records import record_types
from fhir_server.storage.database import HISTORY, JOB_MARKS
from fhir_server.storage.sharding import by_patient

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository, Session

SWEEP = "blob-sweep"


async def empty_record(repository: Repository, session: Session, patient: str, *,
                       keep_versions_from: int | None = None) -> int:
    """Remove what the record holds but its Patient; with `keep_versions_from`, the Patient's own
    past versions older than that one too (its demographics). Returns how many resources went."""
    await repository.settle(session)  # what the transaction wrote is in the store, and goes too
    history = repository.database.collection(HISTORY)
    digests: dict[str, bool] = {}
    for doc in await history.find({"pat": patient, "rt": "Binary"}, {"blob": 1}, session=session).to_list(None):
        if doc.get("blob"):
            digests[doc["blob"]["sha256"]] = bool(doc["blob"].get("gridfs"))
    others = sorted(record_types() - {"Patient"})
    removed = 0
    for rtype in others:
        gone = [d["_id"] for d in await repository.collection(rtype).find({"pat": patient}, {"_id": 1},
                                                                            session=session).to_list(None)]
        if not gone:
            continue
        removed += (await repository.collection(rtype).delete_many({"pat": patient}, session=session)).deleted_count
        if by_patient(rtype):
            # Nothing of them is left to route to, and their ids may be created anew.
            await repository.ids_table.remove(rtype, gone, session)
    await history.delete_many({"pat": patient, "rt": {"$in": others}}, session=session)
    if keep_versions_from is not None:
        await history.delete_many({"rid": f"Patient/{patient}", "vid": {"$lt": keep_versions_from}}, session=session)
    marks = repository.database.collection(JOB_MARKS)
    for digest, in_gridfs in digests.items():
        if await history.find_one({"blob.sha256": digest}, {"_id": 1}, session=session) is not None:
            continue
        if in_gridfs:
            await marks.replace_one({"_id": f"{SWEEP}/{digest}"}, {"_id": f"{SWEEP}/{digest}", "kind": SWEEP,
                                                                   "sha256": digest}, upsert=True, session=session)
        else:
            await repository.blobs.blobs.delete_one({"_id": digest}, session=session)
    return removed


async def sweep_blobs(repository: Repository) -> int:
    """Remove the GridFS bytes purges marked, unless a version stored since names them again."""
    database = repository.database
    marks = database.collection(JOB_MARKS)
    async with database.gate.read():
        pending = await marks.find({"kind": SWEEP}).to_list(None)
    swept = 0
    for mark in pending:
        digest = mark["sha256"]
        async with database.gate.write(exclude_readers=False):
            if await database.collection(HISTORY).find_one({"blob.sha256": digest}, {"_id": 1}) is None:
                for found in await repository.blobs.files.find({"filename": digest}, {"_id": 1}).to_list(None):
                    await repository.blobs.bucket.delete(found["_id"])
                    swept += 1
            await marks.delete_one({"_id": mark["_id"]})
    return swept
