"""Instance-level interactions: read, vread, update, patch, delete, instance history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.authentication import permit
from fhir_server.api.body import patch_body, read_body, resource_body
from fhir_server.api.caller import request_caller
from fhir_server.api.headers import if_match
from fhir_server.api.history_bundle import history_response
from fhir_server.api.negotiation import FHIR_XML_TYPES, JSON_TYPES, is_fhir_body, query_value
from fhir_server.api.responses import fhir_response, version_headers, write_response
from fhir_server.interactions import read as reading
from fhir_server.interactions import write as writing
from fhir_server.interactions.read import Found
from fhir_server.storage.repository import Repository

router = APIRouter()


def repository(request: Request) -> Repository:
    return request.app.state.repository


def wants_raw_binary(request: Request) -> bool:
    if query_value(request, "_format"):
        return False
    accept = [a.split(";")[0].strip().lower() for a in request.headers.get("accept", "").split(",") if a.strip()]
    return not any(a in JSON_TYPES or a in FHIR_XML_TYPES for a in accept)


async def resource_response(request: Request, found: Found) -> Response:
    headers = version_headers(found.stored)
    if found.stored.resource_type == "Binary" and wants_raw_binary(request):
        content = await repository(request).binary_content(found.stored)
        media = found.resource.get("contentType") or "application/octet-stream"
        return Response(content, media_type=media, headers=headers)
    return fhir_response(request, found.resource, headers=headers)


def _shaping(request: Request, resource_type: str) -> dict[str, Any]:
    """`_summary`/`_elements` as asked; a raw Binary answer carries its bytes itself."""
    return {
        "summary": query_value(request, "_summary"),
        "elements": [e for e in (query_value(request, "_elements") or "").split(",") if e],
        "with_data": not (resource_type == "Binary" and wants_raw_binary(request)),
    }


@router.get("/fhir/{resource_type}/{resource_id}", summary="read: the current version of a resource")
async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    permit(request, "read", resource_type)
    found = await reading.read(repository(request), request_caller(request), resource_type, resource_id,
                               **_shaping(request, resource_type))
    permit(request, "read", resource_type, resource=found.stored.resource)
    return await resource_response(request, found)


@router.get("/fhir/{resource_type}/{resource_id}/_history/{version}", summary="vread: one version of a resource")
async def vread(request: Request, resource_type: str, resource_id: str, version: str) -> Response:
    permit(request, "vread", resource_type)
    found = await reading.vread(repository(request), request_caller(request), resource_type, resource_id, version,
                                **_shaping(request, resource_type))
    permit(request, "vread", resource_type, resource=found.stored.resource)
    return await resource_response(request, found)


@router.get("/fhir/{resource_type}/{resource_id}/_history", summary="history-instance: the versions of a resource")
async def instance_history(request: Request, resource_type: str, resource_id: str) -> Response:
    repository(request).check_type(resource_type)
    permit(request, "history-instance", resource_type)
    return await history_response(request, resource_type, resource_id)


async def binary_or_json(request: Request, resource_type: str) -> tuple[dict[str, Any], bytes | None]:
    """A Binary may arrive as raw bytes with their own Content-Type; everything else is FHIR JSON or XML."""
    content_type = request.headers.get("content-type", "")
    if resource_type == "Binary" and not is_fhir_body(content_type):
        raw = await read_body(request)
        media = content_type.split(";")[0].strip() or "application/octet-stream"
        resource: dict[str, Any] = {"resourceType": "Binary", "contentType": media}
        context = request.headers.get("x-security-context")
        if context:
            resource["securityContext"] = {"reference": context}
        return resource, raw
    return await resource_body(request), None


@router.put("/fhir/{resource_type}/{resource_id}", summary="update: a new version (or create with the client's id); If-Match")
async def update(request: Request, resource_type: str, resource_id: str) -> Response:
    repository(request).check_type(resource_type)
    body, raw = await binary_or_json(request, resource_type)
    permit(request, "update", resource_type, resource=body)
    written = await writing.update(repository(request), request_caller(request), resource_type, resource_id, body,
                                   if_match=if_match(request), raw=raw)
    result = written.result
    return write_response(request, result.stored, written.resource, 201 if result.created else 200,
                          "Created" if result.created else ("Updated" if result.changed else "No change"))


@router.patch("/fhir/{resource_type}/{resource_id}", summary="patch: JSON Patch or FHIRPath Patch; If-Match")
async def patch(request: Request, resource_type: str, resource_id: str) -> Response:
    repository(request).check_type(resource_type)
    permit(request, "patch", resource_type)
    written = await writing.patch(repository(request), request_caller(request), resource_type, resource_id,
                                  await patch_body(request), if_match=if_match(request))
    return write_response(request, written.result.stored, written.resource, 200, "Patched")


@router.delete("/fhir/{resource_type}/{resource_id}", summary="delete a resource")
async def delete(request: Request, resource_type: str, resource_id: str) -> Response:
    permit(request, "delete", resource_type)
    result = await writing.delete(repository(request), request_caller(request), resource_type, resource_id)
    headers = {"ETag": f'W/"{result.stored.version}"'} if result else {}
    return Response(status_code=204, headers=headers)
