"""The OpenAPI document of the HTTP API (`/openapi.json`), and the API reference page made from it (`/docs`).

FastAPI's generator writes it from the registered routes (pages left out): each route's `summary`,
its docstring as description, and the tags its router is included with (app.py). The FHIR routes
are generic (`/fhir/{resource_type}`): the document names the types they serve, from the
CapabilityStatement, as the enum of that parameter and, with each type's interactions and search
parameters, under `x-fhir-resources`; their bodies and answers are FHIR JSON or XML, which the
generator cannot see (the routes read the body themselves), so they are written in here.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import APIRouter
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import Response

from fhir_server import FHIR_VERSION
from fhir_server.api.negotiation import FHIR_JSON, FHIR_XML
from fhir_server.api.responses import base_url, json_response
from fhir_server.web.pages import PAGE
from fhir_server.web.templates import render, server_version

PATH = "/openapi.json"
FHIR_TAG = "FHIR"
# The tags in the order the reference shows them, with what each covers.
TAGS = [
    {"name": FHIR_TAG, "description": "FHIR R4 RESTful interactions (http.html) on every resource type the "
     "server stores: JSON (application/fhir+json) or XML (application/fhir+xml), chosen by Accept or _format; "
     "_pretty=true indents the answer."},
    {"name": "FHIR operations", "description": "FHIR operations ($name) the CapabilityStatement declares."},
    {"name": "ingest", "description": "Documents and messages pushed by hospital systems: CDA R2, HL7 v2 over HTTP."},
    {"name": "auth", "description": "OAuth 2.0 / SMART: discovery, the token endpoint and the server's keys."},
    {"name": "admin", "description": "Administration of the record and the service."},
    {"name": "operations", "description": "For operators and client developers: health probes, metrics, this document."},
    {"name": "export", "description": "A patient's data, and FHIR Bulk Data export."},
]
FHIR_BODY = {"content": {FHIR_JSON: {"schema": {"type": "object"}}, FHIR_XML: {"schema": {"type": "string"}}}}
PATCH_BODY = {"content": {"application/json-patch+json": {"schema": {"type": "array"}},
                          FHIR_JSON: {"schema": {"type": "object", "description": "FHIRPath Patch (Parameters)"}},
                          FHIR_XML: {"schema": {"type": "string", "description": "FHIRPath Patch (Parameters)"}}}}
ERROR = {"description": "An OperationOutcome saying what is wrong", **FHIR_BODY}
WRITES = ("post", "put", "patch")

router = APIRouter()


def document(request: Request) -> dict[str, Any]:
    """The OpenAPI document, made once per base URL (the routes do not change while the server runs)."""
    state = request.app.state
    base = base_url(request)
    cached: dict[str, dict[str, Any]] = state.__dict__.setdefault("openapi_documents", {})
    if base not in cached:
        cached[base] = _generate(request.app.routes, state.capability_statement(base))
    return cached[base]


def _generate(routes: list[Any], capabilities: dict[str, Any]) -> dict[str, Any]:
    with warnings.catch_warnings():
        # Two paths served by one function (`/fhir` and `/fhir/`) share an operation id; both are listed.
        warnings.simplefilter("ignore")
        schema = get_openapi(
            title="FHIR server", version=server_version(), routes=routes, tags=TAGS,
            description=f"HTTP API of a FHIR R{FHIR_VERSION.split('.')[0]} ({FHIR_VERSION}) server for a personal "
                        "health record. FHIR routes are under /fhir; their bearer token comes from /auth/token. "
                        "The resource types, their interactions and search parameters are listed under "
                        "x-fhir-resources (and in /fhir/metadata).")
    for path in list(schema["paths"]):
        # Pages are for people, under the page layer: not part of the API.
        kept = {m: op for m, op in schema["paths"][path].items() if PAGE not in (op.get("tags") or [])}
        if kept:
            schema["paths"][path] = kept
        else:
            del schema["paths"][path]
    resources = [_resource(entry) for rest in capabilities.get("rest", []) for entry in rest.get("resource", [])]
    schema["x-fhir-resources"] = resources
    types = [entry["type"] for entry in resources]
    for path, operations in schema["paths"].items():
        if not path.startswith("/fhir"):
            continue
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "resource_type":
                    parameter["schema"] = {"type": "string", "enum": types, "title": "FHIR resource type"}
            if method in WRITES and "requestBody" not in operation:
                operation["requestBody"] = PATCH_BODY if method == "patch" else FHIR_BODY
            answers = operation.setdefault("responses", {})
            success = next((code for code in answers if code.startswith("2")), "200")
            answers[success] = {"description": answers.get(success, {}).get("description", "Successful Response"),
                                **FHIR_BODY}
            answers.pop("422", None)  # FastAPI's validation error shape: the server answers OperationOutcomes
            answers["4XX"] = ERROR
    return schema


def _resource(entry: dict[str, Any]) -> dict[str, Any]:
    return {"type": entry.get("type"),
            "interactions": [i.get("code") for i in entry.get("interaction", [])],
            "searchParams": [p.get("name") for p in entry.get("searchParam", [])]}


@router.get(PATH, summary="This OpenAPI document")
async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3 description of every route but the HTML pages; open, like the CapabilityStatement."""
    return json_response(document(request), media_type="application/json")


def operations_by_tag(schema: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """For the reference page: each tag with its operations (method, path, summary, description, parameters)."""
    grouped: dict[str, list[dict[str, Any]]] = {tag["name"]: [] for tag in schema.get("tags", [])}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            entry = {"method": method.upper(), "path": path, "summary": operation.get("summary", ""),
                     "description": operation.get("description", ""),
                     "parameters": [p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"],
                     "bodies": sorted(operation.get("requestBody", {}).get("content", {}))}
            for tag in operation.get("tags") or ["other"]:
                grouped.setdefault(tag, []).append(entry)
    tags = {tag["name"]: tag for tag in schema.get("tags", [])}
    return [(tags.get(name, {"name": name, "description": ""}), entries) for name, entries in grouped.items() if entries]


pages = APIRouter(tags=[PAGE])


@pages.get("/docs")
async def reference(request: Request) -> Response:
    schema = document(request)
    return render(request.scope, "api.html", info=schema["info"], groups=operations_by_tag(schema),
                  resources=schema["x-fhir-resources"])
