"""`?_dryRun=true` on the ingest endpoints (`POST /ingest/cda`, `POST /ingest/hl7v2`).

The whole intake runs: parsing, mapping, the PDSm check, identity resolution, the duplicate check,
and the transaction itself with every access rule and write, in a store transaction that is then
rolled back (`BundleProcessor.dry_run`), so the record, its history and the outbox stay as they
were and the Binary bytes are not written. A refusal is answered exactly as the real intake answers
it; an acceptance with a `Parameters`: `outcome` (what storing would do to each resource, and the
converter's remarks), `bundle` (the transaction that would be written) and, for HL7 v2, `ack` (the
acknowledgement the message would get). The request is audited like any other, marked a dry run.
"""

from __future__ import annotations

from typing import Any

from fhir_server.audit import trace
from fhir_server.errors import FhirError, Issue, operation_outcome

PARAMETER = "_dryRun"
# How an entry of a dry run's transaction-response says what its write would have done.
ACTIONS = {"create": "would be created", "update": "would be updated", "unchanged": "is already in the record, unchanged"}


def requested(value: str | None) -> bool:
    """Whether the query asks for a dry run; the audit trail of the request then says so."""
    if value is None or value == "false":
        return False
    if value != "true":
        raise FhirError(400, "value", f"{PARAMETER} is true or false, not '{value}'", [PARAMETER])
    trace.dry_run()
    return True


def action(created: bool, changed: bool) -> dict[str, Any]:
    """The outcome a dry run's transaction-response entry carries (see `answer`)."""
    name = "create" if created else "update" if changed else "unchanged"
    return operation_outcome([Issue("information", "informational", name)])


def answer(response: dict[str, Any], base: str, warnings: list[str], ack: bytes | None = None) -> dict[str, Any]:
    """A dry run's answer from the transaction-response of the rolled-back transaction. The
    patients it would have created leave the request's audit trail: no such record exists."""
    issues = [Issue("information", "informational", "Dry run: nothing was stored. Storing it would do what follows.")]
    entries: list[dict[str, Any]] = []
    for item in response["entry"]:
        answered = item.get("response") or {}
        outcome = (answered.get("outcome") or {}).get("issue") or [{}]
        name = outcome[0].get("diagnostics")
        reference = str(answered.get("location", "")).split("/_history")[0]
        if name not in ACTIONS or "/" not in reference:
            issues.append(Issue("information", "informational", f"An entry would answer {answered.get('status')}"))
            continue
        resource_type, resource_id = reference.split("/", 1)
        issues.append(Issue("information", "informational", f"{reference} {ACTIONS[name]}",
                            [f"Bundle.entry[{len(entries)}]"] if name != "unchanged" else []))
        if name == "unchanged":
            continue
        if name == "create" and resource_type == "Patient":
            trace.never_stored(resource_id)
        request = {"method": "POST", "url": resource_type} if name == "create" else {"method": "PUT", "url": reference}
        entries.append({"fullUrl": f"{base}/{reference}", "resource": item.get("resource"), "request": request})
    issues += [Issue("warning", "informational", w) for w in warnings]
    parameters: list[dict[str, Any]] = [
        {"name": "outcome", "resource": operation_outcome(issues)},
        {"name": "bundle", "resource": {"resourceType": "Bundle", "type": "transaction", "entry": entries}},
    ]
    if ack is not None:
        parameters.append({"name": "ack", "valueString": ack.decode("utf-8", errors="replace")})
    return {"resourceType": "Parameters", "parameter": parameters}
