"""System-level interactions: capabilities, batch/transaction, system history and search."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.authentication import permit
from fhir_server.api.caller import request_caller
from fhir_server.api.body import resource_body
from fhir_server.api.history_bundle import history_response
from fhir_server.api.instance_routes import repository
from fhir_server.api.responses import base_url, fhir_response
from fhir_server.api.type_routes import run_search, searches
from fhir_server.mhd.provide_bundle import is_provide_bundle
from fhir_server.observability.ingest import attempt
from fhir_server.operations.transaction import BundleProcessor

router = APIRouter()


@router.get("/fhir/metadata", summary="capabilities: the CapabilityStatement")
async def metadata(request: Request) -> Response:
    return fhir_response(request, request.app.state.capability_statement(base_url(request)))


@router.post("/fhir", summary="batch or transaction Bundle")
@router.post("/fhir/", include_in_schema=False)
async def bundle(request: Request) -> Response:
    body = await resource_body(request)
    # Entries carry resources only when asked: a transaction-response is otherwise statuses and locations.
    explicit = "return=representation" in request.headers.get("prefer", "")
    processor = BundleProcessor(repository(request), searches(request), request_caller(request), base_url(request),
                                return_resources=explicit, matcher=request.app.state.scope_matcher)
    entries = body.get("entry")
    if not isinstance(entries, list) or not is_provide_bundle(
            [entry.get("resource") for entry in entries if isinstance(entry, dict)]):
        return fhir_response(request, await processor.process(body))
    # An IHE ITI-65 Provide Document Bundle: an ingest line and count (fhir_server.observability).
    with attempt("iti-65"):
        answer = await processor.process(body)
    return fhir_response(request, answer)


@router.get("/fhir/_history", summary="history-system: the versions of every resource")
async def system_history(request: Request) -> Response:
    permit(request, "history-system", "*")
    return await history_response(request, None, None)


@router.get("/fhir", summary="search-system across the types in _type")
@router.get("/fhir/", include_in_schema=False)
async def system_search(request: Request) -> Response:
    return await run_search(request, None, request.query_params.multi_items())
