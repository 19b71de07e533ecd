"""AuditEvent over HTTP, served from the audit store (fhir_server.audit.store), not the clinical one.

- `GET /fhir/AuditEvent` (and `POST .../_search`): the trail the caller may read
  (fhir_server.audit.access), newest first; parameters `patient`, `date` (eq, ge, gt, le, lt on
  `recorded`), `_id`, `_count`, `_summary`, `_elements`, `_include=AuditEvent:agent` (others are
  refused under `Prefer: handling=strict`, ignored otherwise); the requesting professional and organisation
  are resolved to their stored Practitioner and Organization (`agent.who.reference` and `display`),
  which `_include` adds to the Bundle.
- `GET /fhir/AuditEvent/{id}`: one event of that trail, else 404.
- `POST /fhir/AuditEvent`: IHE ITI-20, a client records an event; validated, then stored with the
  group commit.
- `PUT`, `PATCH`, `DELETE`, conditional or not: 405, for every caller (append-only). Bundle entries
  are refused by the audit's record-write hook (fhir_server.audit.hooks).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.authentication import permit
from fhir_server.api.body import read_body, resource_body
from fhir_server.api.caller import request_caller
from fhir_server.api.negotiation import prefer
from fhir_server.api.responses import base_url, fhir_response, outcome_response
from fhir_server.audit.access import trail_filter
from fhir_server.audit.events import agent_key, client_key, codes
from fhir_server.audit.hooks import APPEND_ONLY, append_only
from fhir_server.audit.store import AuditStore, AuditUnavailable
from fhir_server.audit.writer import AuditWriter
from fhir_server.errors import FhirError, operation_outcome
from fhir_server.shaping import shape
from fhir_server.storage.repository import Repository
from fhir_server.timefmt import instant, now_instant

router = APIRouter()
PATH = f"/fhir/{APPEND_ONLY}"
# What `date` prefixes compare `ts` with; a partial date covers its whole span ("\uffff" sorts last).
RANGES = {"ge": ("$gte", ""), "gt": ("$gt", "\uffff"), "le": ("$lte", "\uffff"), "lt": ("$lt", "")}
INCLUDES = frozenset({"AuditEvent:agent", "*"})
PARAMETERS = frozenset({"patient", "date", "_id", "_count", "_offset", "_summary", "_elements", "_include", "_format"})


def advertised(statement: dict[str, Any]) -> dict[str, Any]:
    """The CapabilityStatement saying what AuditEvent really offers: read, search and create, and the
    search parameters above (the R4 list is the clinical types' engine's, not this store's)."""
    for resource in statement.get("rest", [{}])[0].get("resource", []):
        if resource.get("type") == APPEND_ONLY:
            resource["interaction"] = [i for i in resource.get("interaction", [])
                                       if i.get("code") in ("read", "search-type", "create")]
            resource["searchParam"] = [p for p in resource.get("searchParam", []) if p.get("name") in PARAMETERS]
            for unsupported in ("conditionalCreate", "conditionalUpdate", "conditionalDelete", "searchInclude",
                                "searchRevInclude"):
                resource.pop(unsupported, None)
            resource["searchInclude"] = ["AuditEvent:agent"]
    return statement


def _store(request: Request) -> AuditStore:
    return request.app.state.audit_store


def _repository(request: Request) -> Repository:
    return request.app.state.repository


def _patient(value: str) -> str:
    return value.rsplit("Patient/", 1)[-1] if value.startswith(("Patient/", "http")) else value


def _dates(values: list[str]) -> dict[str, str]:
    bounds: dict[str, str] = {}
    for value in values:
        prefix = value[:2] if value[:2].isalpha() else "eq"
        moment = value[2:] if value[:2].isalpha() else value
        if not moment or prefix not in (*RANGES, "eq"):
            raise FhirError(400, "invalid", f"date={value}: use eq, ge, gt, le or lt before an ISO date or instant")
        if prefix == "eq":
            bounds["$gte"], bounds["$lte"] = instant(moment), instant(moment + "\uffff")
        else:
            operator, suffix = RANGES[prefix]
            bounds[operator] = instant(moment + suffix)
    return bounds


def _count(values: list[str], default: int, most: int) -> int:
    if not values:
        return default
    try:
        count = int(values[-1])
    except ValueError:
        raise FhirError(400, "invalid", "_count must be a whole number") from None
    return max(0, min(count, most))


async def _identified(repository: Repository, resource_type: str, system: str, value: str) -> dict[str, Any] | None:
    ids = await repository.ids(resource_type, [("identifier", f"{system}|{value}")], None, 1)
    if not ids:
        return None
    stored = await repository.find_current(None, resource_type, ids[0])
    return stored.resource if stored is not None and not stored.deleted else None


def _display(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Organization":
        return resource.get("name")
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        shown = " ".join(p for p in parts if p)
        if shown:
            return shown
    return None


async def _resolve_agents(repository: Repository, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agents naming a stored Practitioner (IdNatPs) or Organization (FINESS) get its reference and
    name; the resources found are returned for `_include`."""
    systems = codes()["identifierSystems"]
    types = {systems["practitioner"]: "Practitioner", systems["organization"]: "Organization"}
    found: dict[tuple[str, str], dict[str, Any] | None] = {}
    for event in events:
        for agent in event.get("agent") or []:
            identifier = (agent.get("who") or {}).get("identifier") or {}
            key = (identifier.get("system"), identifier.get("value"))
            if key[0] not in types or not key[1]:
                continue
            if key not in found:
                found[key] = await _identified(repository, types[key[0]], *key)
            resource = found[key]
            if resource is not None:
                agent["who"]["reference"] = f"{resource['resourceType']}/{resource['id']}"
                display = _display(resource)
                if display:
                    agent["who"]["display"] = display
    return [r for r in found.values() if r is not None]


async def _search(request: Request, params: list[tuple[str, str]]) -> Response:
    permit(request, "search-type", APPEND_ONLY, criteria=[p for p in params if not p[0].startswith("_")])
    settings = request.app.state.settings
    values: dict[str, list[str]] = {}
    for name, value in params:
        values.setdefault(name, []).append(value)
    unknown = sorted(set(values) - PARAMETERS)
    if unknown and prefer(request).strict:
        raise FhirError(400, "not-supported", f"AuditEvent searches do not take {', '.join(unknown)}")
    patients = [_patient(p) for value in values.get("patient", []) for p in value.split(",") if p]
    if len(set(patients)) > 1:
        raise FhirError(400, "not-supported", "AuditEvent?patient= takes one patient at a time")
    query = await trail_filter(_repository(request), request_caller(request), patients[0] if patients else None)
    count = _count(values.get("_count", []), settings.default_count, settings.max_count)
    try:
        offset = max(0, int((values.get("_offset") or ["0"])[-1]))
    except ValueError:
        raise FhirError(400, "invalid", "_offset must be a whole number") from None
    events: list[dict[str, Any]] = []
    more = False
    if query is not None and count:
        dates = _dates(values.get("date", []))
        if dates:
            query["ts"] = dates
        if values.get("_id"):
            query["_id"] = values["_id"][-1]
        events = await _store(request).find(query, offset, count + 1)
        more = len(events) > count
        events = events[:count]
    agents = await _resolve_agents(_repository(request), events)
    summary = (values.get("_summary") or [None])[-1]
    elements = [e for value in values.get("_elements", []) for e in value.split(",") if e]
    if summary or elements:
        events = [shape(e, summary, elements) for e in events]
    base = base_url(request)
    entries: list[dict[str, Any]] = [{"fullUrl": f"{base}/AuditEvent/{e['id']}", "resource": e,
                                      "search": {"mode": "match"}} for e in events]
    if INCLUDES & set(values.get("_include", [])):
        entries += [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "include"}}
                    for r in agents]
    kept = [(n, v) for n, v in params if n != "_offset"]
    links = [{"relation": "self", "url": f"{base}/AuditEvent?{urlencode([*kept, ('_offset', offset)])}"}]
    if more:
        links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode([*kept, ('_offset', offset + count)])}"})
    return fhir_response(request, {"resourceType": "Bundle", "id": uuid.uuid4().hex, "type": "searchset",
                                   "meta": {"lastUpdated": now_instant()}, "link": links, "entry": entries})


@router.get(PATH)
async def search(request: Request) -> Response:
    return await _search(request, request.query_params.multi_items())


@router.post(f"{PATH}/_search")
async def search_post(request: Request) -> Response:
    try:
        form = parse_qsl((await read_body(request)).decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise FhirError(400, "invalid", "The form body is not UTF-8") from exc
    return await _search(request, [*request.query_params.multi_items(), *form])


@router.get(PATH + "/{event_id}")
async def read(request: Request, event_id: str) -> Response:
    permit(request, "read", APPEND_ONLY)
    query = await trail_filter(_repository(request), request_caller(request), None)
    events = await _store(request).find({**query, "_id": event_id}, 0, 1) if query is not None else []
    if not events:
        raise FhirError(404, "not-found", f"AuditEvent/{event_id} is not known")
    await _resolve_agents(_repository(request), events)
    return fhir_response(request, events[0])


@router.post(PATH)
async def create(request: Request) -> Response:
    """IHE ITI-20 (Record Audit Event): the event as the client saw it, kept as sent, in the audit store."""
    caller = request_caller(request)
    body = await resource_body(request)
    permit(request, "create", APPEND_ONLY, resource=body)
    event = dict(_repository(request).prepare(caller, body, APPEND_ONLY))
    event["id"] = uuid.uuid4().hex
    event["meta"] = {**(event.get("meta") or {}), "versionId": "1", "lastUpdated": now_instant()}
    patients = [_patient(ref) for entity in event.get("entity") or [] if isinstance(entity, dict)
                for ref in [((entity.get("what") or {}).get("reference") or "")] if ref.startswith("Patient/")]
    document = {"_id": event["id"], "ts": instant(event["meta"]["lastUpdated"]), "pat": patients[0] if patients else None,
                "who": agent_key(caller), "cid": client_key(caller), "res": event}
    writer: AuditWriter = request.app.state.audit_writer
    try:
        await writer.write([document])
    except AuditUnavailable as exc:
        raise FhirError(503, "transient", "The audit store did not take the event; retry later") from exc
    location = f"{base_url(request)}/AuditEvent/{event['id']}/_history/1"
    return fhir_response(request, event, 201, headers={"Location": location, "ETag": 'W/"1"'})


async def _refused(request: Request) -> Response:
    return outcome_response(request.scope, operation_outcome(append_only().issues), 405, headers={"Allow": "GET, POST"})


for path in (PATH, PATH + "/{event_id}"):
    router.add_api_route(path, _refused, methods=["PUT", "PATCH", "DELETE"])
