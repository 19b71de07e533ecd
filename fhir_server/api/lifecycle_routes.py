"""The record's lifecycle operations (issue 14; docs/ACCESS-RULES.md, "Record lifecycle").

`POST [base]/Patient/{id}/$object | $activate | $close | $reopen | $request-deletion`, with the
patient's own token or a legal representative's: each is the Patient update of the record-status
extension the policy names (`policies/record-lifecycle.json`), written through the one update
path, so its rules (who may, from which status, the dates the server stamps) are the ones a plain
Patient update meets too. The answer is the Patient as written.

`POST [base]/$lifecycle` runs the scheduler's round at once, for the platform or an operator,
when the server was started with FHIR_LIFECYCLE_RUN=1 (tests, operators' drills); otherwise it
does not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.access.records import DELETION_EXTENSION, STATUS_EXTENSION, record_status
from fhir_server.api.authentication import permit
from fhir_server.api.caller import request_caller
from fhir_server.api.instance_routes import repository
from fhir_server.api.responses import fhir_response
from fhir_server.errors import FhirError
from fhir_server.interactions import read as reading
from fhir_server.interactions import write as writing
from fhir_server.record.lifecycle import policy, refusal, set_extension
from fhir_server.record.scheduler import run_round
from fhir_server.timefmt import now_instant

router = APIRouter()


async def _change(request: Request, patient_id: str, name: str) -> Response:
    permit(request, "update", "Patient")
    caller = request_caller(request)
    repo = repository(request)
    found = await reading.read(repo, caller, "Patient", patient_id, with_data=False)
    current = found.stored.resource or {}
    status = record_status(current)
    operation = policy().operations[name]
    if name == "reopen" and status == "purged":
        raise FhirError(410, "deleted", "This record was deleted (its archive ended, or its holder asked): "
                        "nothing can be restored; Patient/$activate opens a new, empty one")
    if status not in operation.sources:
        if status == operation.target:
            # Asked twice (a retry): done already.
            return fhir_response(request, found.resource)
        if name == "request-deletion":
            raise FhirError(422, "business-rule", f"Deletion is asked of a closed record; this one is {status}: "
                            "close it first (Patient/$close)")
        if name == "reopen":
            raise FhirError(422, "business-rule", f"Only a closed record is reopened; this one is {status}")
        raise refusal(status, operation.target)
    changed: dict[str, Any] = {k: v for k, v in current.items() if k != "meta"}
    set_extension(changed, STATUS_EXTENSION, {"valueCode": operation.target})
    if status == "purged":
        # The stub of a deleted record was marked no longer in use; the new record is.
        changed.pop("active", None)
    if name == "request-deletion":
        set_extension(changed, DELETION_EXTENSION, {"valueDateTime": now_instant()})
    written = await writing.update(repo, caller, "Patient", patient_id, changed)
    return fhir_response(request, written.resource)


def _route(name: str) -> None:
    async def change(request: Request, patient_id: str) -> Response:
        return await _change(request, patient_id, name)

    change.__name__ = f"patient_{name.replace('-', '_')}"
    router.add_api_route(f"/fhir/Patient/{{patient_id}}/${name}", change, methods=["POST"])


for _name in policy().operations:
    _route(_name)


@router.post("/fhir/$lifecycle")
async def lifecycle_round(request: Request) -> Response:
    if not request.app.state.settings.lifecycle_run:
        raise FhirError(404, "not-found", "Unknown operation $lifecycle")
    caller = request_caller(request)
    if caller.kind not in ("platform", "admin"):
        raise FhirError(403, "forbidden", "$lifecycle is run by the platform or an operator")
    done = await run_round(repository(request))
    return fhir_response(request, {"resourceType": "Parameters", "parameter": [
        {"name": name, "valueInteger": count} for name, count in done.as_dict().items()]})
