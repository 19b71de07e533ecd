"""Request headers with FHIR meaning: If-Match, If-None-Exist."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.etag import parse_etag
from fhir_server.search.conditional import if_none_exist_query


def if_match(request: Request) -> int | None:
    return parse_etag(request.headers.get("if-match"))


def if_none_exist(request: Request, resource_type: str) -> str | None:
    value = request.headers.get("if-none-exist")
    return if_none_exist_query(value, resource_type) if value else None
