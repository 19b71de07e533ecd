"""Appointment status changes, checked on every channel (issue 15; docs/AGENDA.md).

The check is a record-write hook (`fhir_server.storage.hooks`, `Hooks.check_record`): it sees
every version written, whether it comes from a FHIR create, update, patch or transaction, or from
an HL7 v2 SIU message (whose transaction goes through the same repository), with the version it
replaces. The allowed changes are data: `policies/appointment-status.json`.

A refused change is 422 `business-rule` (FHIR R4 http.html: 422 Unprocessable Entity, "the proposed
resource violated applicable FHIR profiles or server business rules"; 409 is for version
conflicts and resources the caller may not overwrite). Over HL7 v2 it is an ACK AE whose ERR names
the transition (`fhir_server.ingest.hl7v2.intake`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

from fhir_server.errors import FhirError
from fhir_server.storage.hooks import Hooks, RecordWriteCheck

POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "appointment-status.json"


@cache
def policy() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(POLICY_FILE.read_bytes())
    transitions = data["transitions"]
    unknown = {s for targets in transitions.values() for s in targets} - set(transitions)
    if unknown or not set(data["final"]) <= set(transitions):
        raise ValueError(f"{POLICY_FILE} names statuses it does not define: {sorted(unknown)}")
    return data


def allowed(before: str, after: str) -> bool:
    return before == after or after in policy()["transitions"].get(before, [])


def _status(resource: dict[str, Any] | None) -> str | None:
    value = (resource or {}).get("status")
    return value if isinstance(value, str) else None


def check_transition(before: str | None, after: str | None, *, patient: bool) -> None:
    """Raises FhirError (422) naming the change when the policy refuses it. `before` is None for a
    create (or a write over a deleted version)."""
    rules = policy()
    if patient:
        own = rules["patient"]
        if before is None and after not in own["createStatuses"]:
            raise FhirError(422, "business-rule",
                            f"A patient asks for an appointment with status {' or '.join(own['createStatuses'])}, "
                            f"not '{after}'", ["Appointment.status"])
        if before is not None and before != after and after not in own["toStatuses"]:
            raise FhirError(422, "business-rule",
                            f"Appointment status transition '{before}' -> '{after}' is not the patient's to make "
                            f"(a patient may only change it to {' or '.join(own['toStatuses'])})",
                            ["Appointment.status"])
    if before is None or after is None:
        return
    if not allowed(before, after):
        final = " ('" + before + "' is final)" if before in rules["final"] else ""
        raise FhirError(422, "business-rule",
                        f"Appointment status transition '{before}' -> '{after}' is not allowed{final}",
                        ["Appointment.status"])


async def check_record(check: RecordWriteCheck) -> None:
    if check.resource_type != "Appointment" or check.resource is None:
        return
    current = check.current.resource if check.current is not None and not check.current.deleted else None
    check_transition(_status(current) if current is not None else None, _status(check.resource),
                     patient=check.caller.kind == "patient")


def register(hooks: Hooks) -> None:
    # The file is read now: a broken policy stops the start, not a request.
    policy()
    hooks.record_writes.append(check_record)
