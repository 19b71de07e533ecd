"""FHIR responses: JSON bodies, versioning headers, Prefer: return, OperationOutcomes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.negotiation import FHIR_JSON, prefer, response_type
from fhir_server.errors import FhirError, information, operation_outcome
from fhir_server.storage.documents import Stored
from fhir_server.timefmt import http_date


def base_url(request: Request) -> str:
    configured = request.app.state.settings.base_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def json_response(body: Any, status: int = 200, media_type: str = FHIR_JSON, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=f"{media_type}; charset=utf-8", headers=headers)


def fhir_response(request: Request, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(body, status, response_type(request), headers)


def error_response(error: FhirError) -> Response:
    return json_response(operation_outcome(error.issues), error.status)


def version_headers(stored: Stored) -> dict[str, str]:
    return {"ETag": f'W/"{stored.version}"', "Last-Modified": http_date(stored.last_updated)}


def location(request: Request, stored: Stored) -> str:
    return f"{base_url(request)}/{stored.resource_type}/{stored.id}/_history/{stored.version}"


def write_response(request: Request, stored: Stored, body: dict[str, Any] | None, status: int, message: str) -> Response:
    """The answer to a create/update/patch, shaped by `Prefer: return=`."""
    media = response_type(request)
    headers = version_headers(stored)
    headers["Location"] = location(request, stored)
    wanted = prefer(request).return_
    if wanted == "minimal" or body is None:
        return Response(status_code=status, headers=headers)
    if wanted == "OperationOutcome":
        return json_response(information(message), status, media, headers)
    return json_response(body, status, media, headers)

