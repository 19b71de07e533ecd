"""An objection empties the record (../shared/DECISIONS.md, "Record lifecycle"): once a Patient's
record status becomes `opposed`, everything else in the record, current and past versions and the
bytes no other Binary shares, is removed in the same transaction (`fhir_server.record.purge`), and the purge is an outbox event
for the audit trail. Only the Patient remains, so deposits are refused and nothing is restored if the
person later activates their record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_server.access.records import record_status
from fhir_server.record.purge import empty_record
from fhir_server.security.callers import Caller
from fhir_server.storage import outbox
from fhir_server.storage.documents import Stored
from fhir_server.timefmt import instant

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository, Session


async def purge_on_opposition(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
    if record_status(stored.resource) != "opposed":
        return
    removed = await empty_record(repository, session, stored.id)
    outbox.add(repository.database.pending, session, {
        "_id": f"{instant(stored.last_updated)}|purge/{stored.id}", "kind": "record-purged", "pat": stored.id,
        "ts": instant(stored.last_updated), "removed": removed, "caller": {"kind": caller.kind, "id": caller.id}})


def register_write_rules(repository: Repository) -> None:
    repository.write_rules.setdefault("Patient", []).append(purge_on_opposition)
