"""Formats (_format, Accept, Content-Type, _pretty) and the Prefer header.

The server speaks FHIR JSON and FHIR XML (fhir_server.fhir_xml). `_format` wins over `Accept`
(R4 http.html 2.21.0.6); `Accept` is read with its q-values. A client that accepts neither format
gets 406, a body in neither format 415, each with an OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from fhir_server.errors import FhirError

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
JSON_TYPES = {"application/fhir+json", "application/json", "json", "application/json+fhir", "text/json"}
# The FHIR-specific names: a Binary sent as plain application/xml (a CDA document) is its own content.
FHIR_XML_TYPES = {"application/fhir+xml", "application/xml+fhir", "xml"}
XML_TYPES = FHIR_XML_TYPES | {"application/xml", "text/xml"}
ANY = {"*/*", "application/*", ""}
# Who asked for plain application/json (or xml) gets that name back; other names get FHIR's.
PLAIN = {"application/json", "application/xml"}
SUPPORTED = f"{FHIR_JSON} or {FHIR_XML}"


def query_value(request: Request, name: str) -> str | None:
    """A query parameter of the request; a request without a query, as most reads are, has none
    parsed (Starlette's parse of even an empty query took 3.5 us, issue 18)."""
    if not request.scope.get("query_string"):
        return None
    return request.query_params.get(name)


def media_type(value: str | None) -> str:
    """The media type of a Content-Type or Accept item, without parameters, lower case."""
    return (value or "").split(";", 1)[0].strip().lower()


def _known(media: str) -> str | None:
    if media in JSON_TYPES:
        return media if media in PLAIN else FHIR_JSON
    if media in XML_TYPES:
        return media if media in PLAIN else FHIR_XML
    return None


def _quality(item: str) -> float:
    for parameter in item.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def accepted(accept: str) -> list[str]:
    """The media types of an Accept header, most wanted first (a stable sort keeps the client's order
    among equals), without those it refuses (q=0)."""
    items = [(media_type(item), _quality(item)) for item in accept.split(",")]
    return [media for media, quality in sorted(items, key=lambda pair: -pair[1]) if quality > 0]


def response_type(request: Request) -> str:
    """The media type to answer with: FHIR JSON or XML under one of their names."""
    fmt = query_value(request, "_format")
    if fmt is not None:
        known = _known(media_type(fmt))
        if known is None:
            raise FhirError(406, "not-supported", f"_format '{fmt[:100]}' is not supported; this server speaks {SUPPORTED}")
        return known
    accept = request.headers.get("accept", "")
    offered = accepted(accept) if accept.strip() else [""]
    for media in offered:
        known = _known(media)
        if known is not None:
            return known
        if media in ANY:
            return FHIR_JSON
    raise FhirError(406, "not-supported", f"None of the accepted types ({accept[:200]}) is served here; ask for {SUPPORTED}")


def error_type(request: Request) -> str:
    """The format of an error answer: the client's when it has one, JSON when its wish is the error."""
    try:
        return response_type(request)
    except FhirError:
        return FHIR_JSON


def is_xml(media: str) -> bool:
    return media in XML_TYPES


def pretty(request: Request) -> bool:
    return (query_value(request, "_pretty") or "").lower() == "true"


def is_fhir_json(content_type: str | None) -> bool:
    return media_type(content_type) in JSON_TYPES


def is_fhir_body(content_type: str | None) -> bool:
    """A FHIR resource in JSON or XML under a FHIR name (a Binary under any other type is raw content)."""
    media = media_type(content_type)
    return media in JSON_TYPES or media in FHIR_XML_TYPES


def body_format(request: Request) -> str:
    """`json` or `xml`, from Content-Type; anything else is 415."""
    media = media_type(request.headers.get("content-type"))
    if media in JSON_TYPES:
        return "json"
    if media in XML_TYPES:
        return "xml"
    raise FhirError(415, "not-supported", f"Content-Type '{media[:100] or 'none'}' is not supported; send {SUPPORTED}")


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
