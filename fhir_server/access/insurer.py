"""Reimbursements are the insurer's (docs/RECORD-CONTENTS.md, item d; `policies/insurer.json`).

A record-write hook, so every path that writes (create, update, PATCH, delete, batch,
transaction, the NDJSON import) is held to it in the transaction of the write:

- only the insurer (a system client with role `insurer`) and the platform write the insurer-only
  types (`ExplanationOfBenefit`): the platform for migrations and repairs, every other caller,
  the patient included, gets 403 with nothing stored;
- the insurer writes those types and its `Coverage`, and the shared resources it needs beside
  them (`Organization`): those it creates, and later only those it deposited; nothing else (no
  Patient: an insurer never opens a record, so its claims name records that exist).

Reads are the record's rules (fhir_server.access.rules): the patient reads their reimbursements,
authorised professionals those of the records they may open, and, through a record-keys hook
registered after the rules' own, only the professions the habilitation matrix lets see the DMP's
document type for reimbursement data (TRE_A05 `REMB`): a reimbursement carries that type's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from fhir_server.access import habilitations
from fhir_server.access.record_keys import depositor
from fhir_server.access.records import load
from fhir_server.config import PROJECT_ROOT
from fhir_server.errors import FhirError
from fhir_server.security.callers import Caller
from fhir_server.storage.documents import Stored
from fhir_server.storage.hooks import Hooks, RecordWriteCheck

if TYPE_CHECKING:
    from fhir_server.storage.repository import Reader

POLICY_FILE = PROJECT_ROOT / "policies" / "insurer.json"


@dataclass(frozen=True)
class Policy:
    role: str
    only: frozenset[str]
    writes: frozenset[str]
    own_shared: frozenset[str]
    # The DMP document type whose habilitation class the insurer-only types carry.
    document_type: dict[str, str]


@cache
def policy() -> Policy:
    data = orjson.loads(POLICY_FILE.read_bytes())
    only, writes = frozenset(data["insurerOnly"]), frozenset(data["insurerWrites"])
    if not only <= writes:
        raise ValueError(f"{POLICY_FILE}: every insurer-only type must be one the insurer writes")
    return Policy(data["role"], only, writes, frozenset(data["insurerOwnShared"]), data["documentType"])


def is_insurer(caller: Caller) -> bool:
    return caller.kind == "system" and caller.role == policy().role


async def check_insurer(check: RecordWriteCheck) -> None:
    rules = policy()
    caller = check.caller
    if is_insurer(caller):
        if check.resource_type in rules.only and check.resource is not None:
            await _names_a_record(check)
        if check.resource_type in rules.writes:
            return
        if check.resource_type in rules.own_shared and (
                check.current is None or check.current.keys.get("dep") == depositor(caller)):
            return
        raise FhirError(403, "forbidden", f"An insurer writes {', '.join(sorted(rules.writes))} (and the "
                        f"{', '.join(sorted(rules.own_shared))} it deposited), not {check.resource_type}")
    if check.resource_type in rules.only and caller.kind != "platform":
        raise FhirError(403, "forbidden", f"Only the patient's health insurer writes {check.resource_type} "
                        "(Code de la santé publique R.1111-42 d)")


async def _names_a_record(check: RecordWriteCheck) -> None:
    """A reimbursement goes to a record that exists: the insurer creates none, and one stored for
    an unknown id would wait forever for a Patient the server never gives that id."""
    if check.patient is None or not (await load(check.reader, check.patient)).exists:
        raise FhirError(422, "business-rule", f"{check.resource_type}.patient must name a Patient stored here "
                        "(Patient/{id}): there is no such record", [f"{check.resource_type}.patient"])


async def reimbursement_keys(caller: Caller, resource_type: str, resource: dict[str, Any] | None,
                             current: Stored | None, context: Stored | None, reader: Reader) -> dict[str, Any]:
    """The habilitation class of the REMB document type (a deletion keeps the keys it had)."""
    if resource is None or resource_type not in policy().only:
        return {}
    return {"hab": habilitations.document_class([policy().document_type])}


def register(hooks: Hooks) -> None:
    """After `rules.register`: these keys replace the `hab` the rules' keys give any non-document."""
    hooks.record_writes.append(check_insurer)
    hooks.record_keys.append(reimbursement_keys)
