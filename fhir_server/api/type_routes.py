"""Type-level interactions: create, search (GET and POST _search), conditional update/patch/delete, type history."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.authentication import permit
from fhir_server.api.caller import request_caller
from fhir_server.api.body import patch_body, read_body
from fhir_server.api.headers import if_match, if_none_exist
from fhir_server.api.history_bundle import history_response
from fhir_server.api.instance_routes import binary_or_json, repository
from fhir_server.api.negotiation import media_type, prefer
from fhir_server.api.responses import base_url, fhir_response, write_response
from fhir_server.errors import FhirError
from fhir_server.interactions import read as reading
from fhir_server.interactions import write as writing
from fhir_server.interactions.search import SearchInteraction
from fhir_server.mhd import simplified_publish
from fhir_server.security.search_reach import reached_types
from fhir_server.operations.transaction import BundleProcessor

router = APIRouter()


def searches(request: Request) -> SearchInteraction:
    return request.app.state.search


def listed_types(params: list[tuple[str, str]]) -> list[str]:
    return [t for name, value in params if name == "_type" for t in value.split(",") if t]


def permit_search(request: Request, interaction: str, types: list[str], params: list[tuple[str, str]]) -> None:
    """The caller may search each of `types`, and every type the search reaches from them."""
    registry = repository(request).engine.registry
    for searched in types:
        permit(request, interaction, searched, criteria=params)
        for other in sorted(reached_types(searched, params, registry)):
            # No criteria of its own: a granular scope on that type does not cover it.
            permit(request, "search-type", other, criteria=[])


async def run_search(request: Request, resource_type: str | None, params: list[tuple[str, str]]) -> Response:
    """A search on `resource_type`, or across `_type` when None."""
    permit_search(request, "search-type" if resource_type else "search-system",
                  [resource_type] if resource_type else listed_types(params), params)
    bundle = await searches(request).search(request_caller(request), resource_type, params, base_url=base_url(request),
                                            strict=prefer(request).strict)
    return fhir_response(request, bundle)


@router.get("/fhir/{resource_type}", summary="search-type: a searchset Bundle (parameters of the type in /fhir/metadata)")
async def search_get(request: Request, resource_type: str) -> Response:
    return await run_search(request, resource_type, request.query_params.multi_items())


@router.post("/fhir/{resource_type}/_search", summary="search-type with form-encoded parameters")
async def search_post(request: Request, resource_type: str) -> Response:
    if media_type(request.headers.get("content-type")) not in ("application/x-www-form-urlencoded", ""):
        raise FhirError(415, "not-supported", "POST _search takes application/x-www-form-urlencoded parameters")
    raw = await read_body(request)
    try:
        form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise FhirError(400, "invalid", "The form body is not UTF-8") from exc
    return await run_search(request, resource_type, [*request.query_params.multi_items(), *form])


@router.post("/fhir/{resource_type}", summary="create (conditional with If-None-Exist: a query or Type?query)")
async def create(request: Request, resource_type: str) -> Response:
    repo = repository(request)
    repo.check_type(resource_type)
    body, raw = await binary_or_json(request, resource_type)
    permit(request, "create", resource_type, resource=body)
    if simplified_publish.applies(body):
        return await publish_document(request, repo.prepare(request_caller(request), body, resource_type))
    written = await writing.create(repo, request_caller(request), resource_type, body,
                                   if_none_exist=if_none_exist(request, resource_type), raw=raw)
    if not written.result.created:
        return write_response(request, written.result.stored, written.resource, 200, "A matching resource already exists")
    return write_response(request, written.result.stored, written.resource, 201, "Created")


async def publish_document(request: Request, resource: dict) -> Response:
    """ITI-105: store the Binaries and the DocumentReference in one transaction, answer with the latter."""
    repo = repository(request)
    caller = request_caller(request)
    bundle, index = simplified_publish.as_transaction(resource)
    processor = BundleProcessor(repo, searches(request), caller, base_url(request), return_resources=True,
                                document_publication=True, matcher=request.app.state.scope_matcher)
    response = await processor.process(bundle)
    location = response["entry"][index]["response"]["location"]
    found = await reading.read(repo, caller, "DocumentReference", location.split("/")[1])
    return write_response(request, found.stored, found.resource, 201, "Published")


def _criteria(request: Request, interaction: str) -> list[tuple[str, str]]:
    criteria = request.query_params.multi_items()
    if not criteria:
        raise FhirError(400, "invalid", f"A type-level {interaction} needs search criteria (conditional {interaction})")
    return criteria


@router.put("/fhir/{resource_type}", summary="conditional update: the resource the search criteria find")
async def conditional_update(request: Request, resource_type: str) -> Response:
    repository(request).check_type(resource_type)
    body, _ = await binary_or_json(request, resource_type)
    permit(request, "update", resource_type, resource=body)
    written = await writing.conditional_update(repository(request), request_caller(request), resource_type,
                                               _criteria(request, "update"), body, if_match=if_match(request))
    created = written.result.created
    return write_response(request, written.result.stored, written.resource, 201 if created else 200,
                          "Created" if created else "Updated")


@router.patch("/fhir/{resource_type}", summary="conditional patch: the resource the search criteria find")
async def conditional_patch(request: Request, resource_type: str) -> Response:
    repository(request).check_type(resource_type)
    criteria = _criteria(request, "patch")
    permit(request, "patch", resource_type)
    written = await writing.conditional_patch(repository(request), request_caller(request), resource_type, criteria,
                                              await patch_body(request))
    return write_response(request, written.result.stored, written.resource, 200, "Patched")


@router.delete("/fhir/{resource_type}", summary="conditional delete: the resource the search criteria find")
async def conditional_delete(request: Request, resource_type: str) -> Response:
    permit(request, "delete", resource_type)
    await writing.conditional_delete(repository(request), request_caller(request), resource_type,
                                     _criteria(request, "delete"))
    return Response(status_code=204)


@router.get("/fhir/{resource_type}/_history", summary="history-type: the versions of every resource of a type")
async def type_history(request: Request, resource_type: str) -> Response:
    repository(request).check_type(resource_type)
    permit(request, "history-type", resource_type)
    return await history_response(request, resource_type, None)
