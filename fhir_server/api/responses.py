"""FHIR responses: bodies in the negotiated format, versioning headers, Prefer: return, OperationOutcomes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from fhir_server import fhir_xml
from fhir_server.api.negotiation import FHIR_JSON, error_type, is_xml, prefer, pretty, response_type
from fhir_server.errors import FhirError, information, operation_outcome
from fhir_server.storage.documents import Stored
from fhir_server.timefmt import http_date


def base_url(request: Request) -> str:
    configured = request.app.state.settings.base_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def json_response(body: Any, status: int = 200, media_type: str = FHIR_JSON, headers: dict[str, str] | None = None,
                  indent: bool = False) -> Response:
    content = orjson.dumps(body, option=orjson.OPT_INDENT_2 if indent else 0)
    return Response(content, status_code=status, media_type=f"{media_type}; charset=utf-8", headers=headers)


def encoded(body: Any, status: int, media_type: str, headers: dict[str, str] | None, indent: bool) -> Response:
    """A FHIR resource in `media_type` (one of negotiation's JSON or XML names)."""
    if is_xml(media_type):
        return Response(fhir_xml.to_xml(body, pretty=indent), status_code=status,
                        media_type=f"{media_type}; charset=utf-8", headers=headers)
    return json_response(body, status, media_type, headers, indent)


def fhir_response(request: Request, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return encoded(body, status, response_type(request), headers, pretty(request))


def error_response(error: FhirError, request: Request | None = None) -> Response:
    """The OperationOutcome of an error, in the client's format when there is a request to ask."""
    body = operation_outcome(error.issues)
    if request is None:
        return json_response(body, error.status)
    return encoded(body, error.status, error_type(request), None, pretty(request))


def outcome_response(scope: Scope, body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    """An OperationOutcome a middleware answers with (401, 429), in the client's format."""
    request = Request(scope)
    return encoded(body, status, error_type(request), headers, pretty(request))


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
        return encoded(information(message), status, media, headers, pretty(request))
    return encoded(body, status, media, headers, pretty(request))
