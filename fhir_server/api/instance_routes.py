"""Instance-level interactions: read, vread, update, patch, delete, instance history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.authentication import permit
from fhir_server.api.body import json_patch_body, read_body, resource_body
from fhir_server.api.headers import if_match
from fhir_server.api.history_bundle import history_response
from fhir_server.api.negotiation import JSON_TYPES, is_fhir_json
from fhir_server.api.responses import fhir_response, version_headers, write_response
from fhir_server.shaping import shape
from fhir_server.errors import FhirError
from fhir_server.storage.documents import Stored
from fhir_server.storage.repository import Repository, check_id

router = APIRouter()


def repository(request: Request) -> Repository:
    return request.app.state.repository


def wants_raw_binary(request: Request) -> bool:
    if request.query_params.get("_format"):
        return False
    accept = [a.split(";")[0].strip().lower() for a in request.headers.get("accept", "").split(",") if a.strip()]
    return not any(a in JSON_TYPES for a in accept)


async def resource_response(request: Request, stored: Stored) -> Response:
    repo = repository(request)
    headers = version_headers(stored)
    if stored.resource_type == "Binary":
        if wants_raw_binary(request):
            content = await repo.binary_content(stored)
            media = (stored.resource or {}).get("contentType") or "application/octet-stream"
            return Response(content, media_type=media, headers=headers)
        return fhir_response(request, await repo.with_binary_data(stored), headers=headers)
    summary = request.query_params.get("_summary")
    elements = [e for e in request.query_params.get("_elements", "").split(",") if e]
    return fhir_response(request, shape(stored.resource or {}, summary, elements), headers=headers)


@router.get("/fhir/{resource_type}/{resource_id}")
async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    permit(request, "read", resource_type)
    stored = await repository(request).read(resource_type, resource_id)
    permit(request, "read", resource_type, resource=stored.resource)
    return await resource_response(request, stored)


@router.get("/fhir/{resource_type}/{resource_id}/_history/{version}")
async def vread(request: Request, resource_type: str, resource_id: str, version: str) -> Response:
    permit(request, "vread", resource_type)
    stored = await repository(request).vread(resource_type, resource_id, version)
    permit(request, "vread", resource_type, resource=stored.resource)
    return await resource_response(request, stored)


@router.get("/fhir/{resource_type}/{resource_id}/_history")
async def instance_history(request: Request, resource_type: str, resource_id: str) -> Response:
    repository(request).check_type(resource_type)
    permit(request, "history-instance", resource_type)
    return await history_response(request, {"rid": f"{resource_type}/{resource_id}"})


async def binary_or_json(request: Request, resource_type: str) -> tuple[dict[str, Any], bytes | None]:
    """A Binary may arrive as raw bytes with their own Content-Type; everything else is FHIR JSON."""
    content_type = request.headers.get("content-type", "")
    if resource_type == "Binary" and not is_fhir_json(content_type):
        raw = await read_body(request)
        media = content_type.split(";")[0].strip() or "application/octet-stream"
        resource: dict[str, Any] = {"resourceType": "Binary", "contentType": media}
        context = request.headers.get("x-security-context")
        if context:
            resource["securityContext"] = {"reference": context}
        return resource, raw
    return await resource_body(request), None


@router.put("/fhir/{resource_type}/{resource_id}")
async def update(request: Request, resource_type: str, resource_id: str) -> Response:
    repo = repository(request)
    repo.check_type(resource_type)
    check_id(resource_id)
    body, raw = await binary_or_json(request, resource_type)
    if raw is not None:
        body["id"] = resource_id
    if body.get("id") is None:
        raise FhirError(400, "required", "An update must carry the resource id in the body", ["id"])
    resource = repo.prepare(body, resource_type)
    permit(request, "update", resource_type, resource=resource)
    result = await repo.update(resource_type, resource_id, resource, if_match=if_match(request), raw=raw)
    return write_response(request, result.stored, result.stored.resource, 201 if result.created else 200,
                          "Created" if result.created else ("Updated" if result.changed else "No change"))


@router.patch("/fhir/{resource_type}/{resource_id}")
async def patch(request: Request, resource_type: str, resource_id: str) -> Response:
    repo = repository(request)
    permit(request, "patch", resource_type)
    current = await repo.read(resource_type, resource_id)
    expected = if_match(request)
    if expected is not None and expected != current.version:
        raise FhirError(412, "conflict", f"If-Match version {expected} is not the current version ({current.version})")
    patched = repo.patched(current, await json_patch_body(request))
    permit(request, "patch", resource_type, resource=patched)
    result = await repo.update(resource_type, resource_id, patched, if_match=current.version, method="PATCH")
    return write_response(request, result.stored, result.stored.resource, 200, "Patched")


@router.delete("/fhir/{resource_type}/{resource_id}")
async def delete(request: Request, resource_type: str, resource_id: str) -> Response:
    permit(request, "delete", resource_type)
    result = await repository(request).delete(resource_type, resource_id)
    headers = {"ETag": f'W/"{result.stored.version}"'} if result else {}
    return Response(status_code=204, headers=headers)
