"""SMART `patient/` scopes reach one record: the patient in context (SMART App Launch v2,
"Scopes and Launch Context"; issue 11).

The patient context (a launch-context Patient id, or a patient caller's INS) is resolved to the
Patient resource id once per request, at authentication (`resolve`). Then, for what a caller
may do only through `patient/` scopes:
- the search filter limits every store query to `pat` = that id, so searches, totals, includes,
  chains, `_has`, history and reads never show another patient's data (a hidden resource reads
  as 404); the shared reference types of `profiles/patient-scope.json` stay readable;
- the record check refuses (403) any write whose record patient is not that id, including a
  resource that belongs to no patient.
A context that resolves to no Patient sees nothing and writes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fhir_server.errors import FhirError
from fhir_server.security.callers import INS_SYSTEMS, Caller
from fhir_server.storage.hooks import Hooks, RecordWriteCheck

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository

POLICY_FILE = Path(__file__).resolve().parents[2] / "profiles" / "patient-scope.json"
# No stored resource has an empty `pat` (ids have 1 to 64 characters): the condition matching nothing.
NO_PATIENT = ""
READ_LETTERS = frozenset("rs")
WRITE_LETTERS = frozenset("cud")


@cache
def shared_types() -> frozenset[str]:
    return frozenset(orjson.loads(POLICY_FILE.read_bytes())["sharedTypes"])


async def resolve(caller: Caller, repository: Repository) -> Caller:
    """The caller with `record_patient` set when it has `patient/` scopes; others are left as they
    are, without a store lookup. An INS names the one Patient holding it (INS-NIR or INS-NIA);
    none, several, or a value that is not an INS resolve to nothing."""
    context = caller.patient_context
    if context is None or not caller.scopes.patient_scoped:
        return caller
    if caller.patient is not None:
        return replace(caller, record_patient=caller.patient)
    if not context.isalnum():
        return replace(caller, record_patient=None)
    # The whole store is looked at: this is the server finding whom the token names.
    found = await repository.ids("Patient", [("identifier", ",".join(f"{s}|{context}" for s in INS_SYSTEMS))],
                                 None, 2)
    return replace(caller, record_patient=found[0] if len(found) == 1 else None)


def _bounded(caller: Caller, resource_type: str | None, letters: frozenset[str]) -> bool:
    """Whether the caller's access of this kind to this type comes only from `patient/` scopes:
    a `user/` or `system/` scope covering it keeps its own reach."""
    if caller.patient_context is None or not caller.scopes.patient_scoped:
        return False
    return not any(s.context != "patient" and s.resource_type in ("*", resource_type) and s.letters & letters
                   for s in caller.scopes.resource)


def search_filter(caller: Caller, resource_type: str | None) -> dict[str, Any] | None:
    if not _bounded(caller, resource_type, READ_LETTERS) or resource_type in shared_types():
        return None
    return {"pat": caller.record_patient or NO_PATIENT}


async def check_record(check: RecordWriteCheck) -> None:
    caller = check.caller
    if not _bounded(caller, check.resource_type, WRITE_LETTERS):
        return
    if caller.record_patient is None or check.patient != caller.record_patient:
        raise FhirError(403, "forbidden", f"The token's patient/ scopes allow writing a {check.resource_type} only "
                        "into the record of the patient in context")


def register(hooks: Hooks) -> None:
    hooks.search_filters.append(search_filter)
    hooks.record_writes.append(check_record)
