"""Request headers with FHIR meaning: If-Match, If-None-Exist."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.etag import parse_etag


def if_match(request: Request) -> int | None:
    return parse_etag(request.headers.get("if-match"))


def if_none_exist(request: Request) -> str | None:
    return request.headers.get("if-none-exist") or None
