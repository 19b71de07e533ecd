"""`GET [base]/Patient/{id}/$agenda?start=&end=` (issue 15; profiles/OperationDefinition/
OperationDefinition-Patient-agenda.json): the patient's appointments and prevention reminders in
one searchset Bundle ordered by date.

Each half is an ordinary search run for the caller (so the access rules, scopes and audit apply
exactly as to `GET Appointment?patient=...` and `GET CommunicationRequest?subject=...`), the
Patient itself read first (403 for a record the caller may not open, 404 for none).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.agenda.reminders import AGENDA_CATEGORY
from fhir_server.api.authentication import permit
from fhir_server.api.caller import request_caller
from fhir_server.api.instance_routes import repository
from fhir_server.api.responses import base_url, fhir_response
from fhir_server.api.type_routes import permit_search, searches
from fhir_server.errors import FhirError
from fhir_server.interactions import read as reading

DEFINITION = "https://fhir-server.example.org/OperationDefinition/Patient-agenda"
# Of each type, per request: a window holding more is refused (the caller narrows it).
MAX_ITEMS = 1000
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Where each type keeps its date in the agenda.
DATE_ELEMENTS = {"Appointment": "start", "CommunicationRequest": "occurrenceDateTime"}

router = APIRouter()


def _window(request: Request) -> tuple[str | None, str | None]:
    bounds = []
    for name in ("start", "end"):
        values = request.query_params.getlist(name)
        if len(values) > 1 or (values and not DATE.fullmatch(values[0])):
            raise FhirError(400, "invalid", f"$agenda takes at most one '{name}', a date (YYYY-MM-DD)", [name])
        bounds.append(values[0] if values else None)
    if bounds[0] and bounds[1] and bounds[0] > bounds[1]:
        raise FhirError(400, "invalid", "$agenda's start is after its end", ["start"])
    return bounds[0], bounds[1]


def _dated(parameter: str, start: str | None, end: str | None) -> list[tuple[str, str]]:
    return [*([(parameter, f"ge{start}")] if start else []), *([(parameter, f"le{end}")] if end else [])]


async def _entries(request: Request, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    params = [*params, ("_count", str(MAX_ITEMS))]
    permit_search(request, "search-type", [resource_type], params)
    bundle = await searches(request).search(request_caller(request), resource_type, params,
                                            base_url=base_url(request), strict=True)
    if any(link.get("relation") == "next" for link in bundle.get("link") or []):
        raise FhirError(422, "too-costly", f"More than {MAX_ITEMS} {resource_type} resources in this window: "
                        "narrow it with start and end")
    return [e for e in bundle.get("entry") or [] if (e.get("search") or {}).get("mode") != "outcome"]


def _when(entry: dict[str, Any]) -> tuple[int, str]:
    resource = entry.get("resource") or {}
    value = resource.get(DATE_ELEMENTS.get(resource.get("resourceType", ""), ""))
    return (0, value) if isinstance(value, str) else (1, "")


@router.get("/fhir/Patient/{patient_id}/$agenda")
async def agenda(request: Request, patient_id: str) -> Response:
    start, end = _window(request)
    permit(request, "read", "Patient")
    await reading.read(repository(request), request_caller(request), "Patient", patient_id)
    appointments = await _entries(request, "Appointment",
                                  [("patient", f"Patient/{patient_id}"), *_dated("date", start, end)])
    reminders = await _entries(request, "CommunicationRequest", [
        ("subject", f"Patient/{patient_id}"), ("category", f"{AGENDA_CATEGORY['system']}|{AGENDA_CATEGORY['code']}"),
        *_dated("occurrence", start, end)])
    entries = sorted([*appointments, *reminders], key=_when)
    query = "&".join(f"{k}={v}" for k, v in (("start", start), ("end", end)) if v)
    return fhir_response(request, {
        "resourceType": "Bundle", "type": "searchset", "total": len(entries),
        "link": [{"relation": "self", "url": f"{base_url(request)}/Patient/{patient_id}/$agenda"
                  + (f"?{query}" if query else "")}],
        "entry": entries,
    })
