"""The audit's hooks on the access path (fhir_server.storage.hooks).

- record open, first of all: the records an interaction names go into its trace before any rule
  can refuse them, so a refused access shows in the trail of the record it was refused on;
- record write, last of all: every version written, once every other check let it through; and no
  AuditEvent is ever written to the clinical store, by anyone on any path (bundles, conditional
  writes, deletions): AuditEvents are created in the audit store (fhir_server.audit.routes) and
  never changed (../shared/DECISIONS.md, "Audit and outbox").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_server.audit import trace
from fhir_server.errors import FhirError
from fhir_server.security.callers import Caller
from fhir_server.storage.hooks import Hooks, RecordWriteCheck, ScopeFilter

if TYPE_CHECKING:
    from fhir_server.storage.repository import Reader

APPEND_ONLY = "AuditEvent"


def append_only() -> FhirError:
    return FhirError(405, "not-supported", "AuditEvents are append-only: they are created (POST /AuditEvent, IHE ITI-20) "
                                           "and never updated, patched or deleted, by anyone")


async def _named(caller: Caller, reader: Reader, patients: list[str] | None) -> ScopeFilter | None:
    trace.named(patients)
    return None


async def _written(check: RecordWriteCheck) -> None:
    if check.resource_type == APPEND_ONLY:
        raise append_only()
    trace.written(check.resource_type, check.resource_id, check.patient)


def register_first(hooks: Hooks) -> None:
    hooks.record_opens.insert(0, _named)


def register_last(hooks: Hooks) -> None:
    hooks.record_writes.append(_written)
