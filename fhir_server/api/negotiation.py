"""Formats (_format, Accept, Content-Type) and the Prefer header."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from fhir_server.errors import FhirError

FHIR_JSON = "application/fhir+json"
JSON_TYPES = {"application/fhir+json", "application/json", "json", "application/json+fhir", "text/json"}
XML_TYPES = {"application/fhir+xml", "application/xml", "xml", "text/xml", "application/xml+fhir"}
ANY = {"*/*", "application/*", ""}


def media_type(value: str | None) -> str:
    """The media type of a Content-Type or Accept item, without parameters, lower case."""
    return (value or "").split(";", 1)[0].strip().lower()


def response_type(request: Request) -> str:
    """The JSON media type to answer with; a client that only accepts XML gets 406."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        wanted = media_type(fmt)
        if wanted in JSON_TYPES:
            return "application/json" if wanted == "application/json" else FHIR_JSON
        raise FhirError(406, "not-supported", f"_format '{fmt}' is not supported; this server speaks application/fhir+json")
    accept = request.headers.get("accept", "")
    offered = [media_type(a) for a in accept.split(",")] if accept else [""]
    for media in offered:
        if media in JSON_TYPES:
            return "application/json" if media == "application/json" else FHIR_JSON
        if media in ANY:
            return FHIR_JSON
    if all(m in XML_TYPES for m in offered if m):
        raise FhirError(406, "not-supported", "XML is not supported; ask for application/fhir+json")
    return FHIR_JSON


def is_fhir_json(content_type: str | None) -> bool:
    return media_type(content_type) in JSON_TYPES


def require_json_body(request: Request) -> None:
    media = media_type(request.headers.get("content-type"))
    if media in XML_TYPES:
        raise FhirError(415, "not-supported", "XML bodies are not supported; send application/fhir+json")
    if media not in JSON_TYPES:
        raise FhirError(415, "not-supported", f"Content-Type '{media or 'none'}' is not supported; send application/fhir+json")


@dataclass
class Prefer:
    return_: str = "representation"
    strict: bool = False


def prefer(request: Request) -> Prefer:
    result = Prefer()
    for part in request.headers.get("prefer", "").split(";"):
        for token in part.split(","):
            key, _, value = token.strip().partition("=")
            value = value.strip().strip('"')
            if key == "return" and value in ("minimal", "representation", "OperationOutcome"):
                result.return_ = value
            elif key == "handling":
                result.strict = value == "strict"
    return result
