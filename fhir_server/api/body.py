"""Request bodies: read within the size limit, then checked once for every route that takes FHIR.

A FHIR resource, a Bundle and the Parameters of an operation are JSON objects, or FHIR XML read into
that same form (fhir_server.fhir_xml), so routes see one shape; a JSON Patch is an array. Any other
JSON value (`null`, `[]`, `"x"`, `1`) is refused with 400 here, before a route looks inside it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from fhir_server import fhir_xml
from fhir_server.api.negotiation import body_format, media_type
from fhir_server.errors import FhirError

JSON_PATCH = "application/json-patch+json"
JSON_KINDS = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


async def read_body(request: Request) -> bytes:
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FhirError(413, "too-costly", f"The body ({declared} bytes) is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError(413, "too-costly", f"The body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise FhirError(400, "structure", "The request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, "structure", f"The body is not valid JSON: {exc}") from exc


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        found = "null" if value is None else JSON_KINDS.get(type(value), "another JSON value")
        raise FhirError(400, "structure", f"The body must be {what}, not {found}")
    return value


def parse_xml(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise FhirError(400, "structure", "The request body is empty")
    try:
        return fhir_xml.from_xml(raw)
    except fhir_xml.XmlFormatError as exc:
        raise FhirError(400, "structure", f"The body is not FHIR XML: {exc}",
                        [exc.location] if exc.location else None) from None


async def resource_body(request: Request) -> dict[str, Any]:
    """A FHIR body, JSON or XML: a resource, a Bundle or Parameters, so always a JSON object."""
    if body_format(request) == "xml":
        return parse_xml(await read_body(request))
    return _expect(parse_json(await read_body(request)), dict, "a JSON object holding a FHIR resource")


async def patch_body(request: Request) -> list[Any] | dict[str, Any]:
    """A JSON Patch (RFC 6902), an array of operations; or a FHIRPath Patch (R4 fhirpatch.html), a
    Parameters resource in FHIR JSON or XML (fhir_server.operations.fhirpath_patch)."""
    if media_type(request.headers.get("content-type")) == JSON_PATCH:
        return _expect(parse_json(await read_body(request)), list, "a JSON Patch, an array of operations")
    try:
        body_format(request)
    except FhirError:
        raise FhirError(415, "not-supported", f"PATCH takes a JSON Patch ({JSON_PATCH}) or a FHIRPath Patch "
                                              "(Parameters in application/fhir+json or application/fhir+xml)") from None
    parameters = await resource_body(request)
    if parameters.get("resourceType") != "Parameters":
        raise FhirError(400, "structure", "A FHIRPath Patch is a Parameters resource")
    return parameters
