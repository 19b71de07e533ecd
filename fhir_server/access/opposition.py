"""An objection empties the record (../shared/DECISIONS.md, "Record lifecycle"): once a Patient's
record status becomes `opposed`, everything else in the record, current and past versions and the
bytes no other Binary shares, is removed in the same transaction, and the purge is an outbox event
for the audit trail. Only the Patient remains, so deposits are refused and nothing is restored if the
person later activates their record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_server.access.records import record_status, record_types
from fhir_server.security.callers import Caller
from fhir_server.storage import outbox
from fhir_server.storage.database import HISTORY
from fhir_server.storage.documents import Stored
from fhir_server.storage.sharding import by_patient
from fhir_server.timefmt import instant

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository, Session


async def purge_on_opposition(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
    if record_status(stored.resource) != "opposed":
        return
    patient = stored.id
    history = repository.database.collection(HISTORY)
    shared_bytes = set()
    for doc in await history.find({"pat": patient, "rt": "Binary"}, {"blob": 1}, session=session).to_list(None):
        if doc.get("blob"):
            shared_bytes.add(doc["blob"]["sha256"])
    removed = 0
    for rtype in sorted(record_types() - {"Patient"}):
        gone = [d["_id"] for d in await repository.collection(rtype).find({"pat": patient}, {"_id": 1},
                                                                            session=session).to_list(None)]
        if not gone:
            continue
        removed += (await repository.collection(rtype).delete_many({"pat": patient}, session=session)).deleted_count
        if by_patient(rtype):
            # Nothing of them is left to route to, and their ids may be created anew.
            await repository.ids_table.remove(rtype, gone, session)
    await history.delete_many({"pat": patient, "rt": {"$in": sorted(record_types() - {"Patient"})}}, session=session)
    for digest in shared_bytes:
        still_used = await history.find_one({"blob.sha256": digest}, {"_id": 1}, session=session)
        if still_used is None:
            await repository.blobs.blobs.delete_one({"_id": digest}, session=session)
    outbox.add(repository.database.pending, session, {
        "_id": f"{instant(stored.last_updated)}|purge/{patient}", "kind": "record-purged", "pat": patient,
        "ts": instant(stored.last_updated), "removed": removed, "caller": {"kind": caller.kind, "id": caller.id}})


def register_write_rules(repository: Repository) -> None:
    repository.write_rules.setdefault("Patient", []).append(purge_on_opposition)
