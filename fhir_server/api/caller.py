"""The caller of an HTTP request: whom the bearer token names, as the authentication middleware
(fhir_server.api.authentication) found it."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.security.callers import Caller


def request_caller(request: Request) -> Caller:
    return request.state.caller  # type: ignore[no-any-return]
