"""Every failure a client can cause becomes an OperationOutcome with the right status; nothing else leaks."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.responses import error_response
from fhir_server.errors import FhirError
from fhir_server.web.layer import message_page
from fhir_server.web.paths import is_api

log = logging.getLogger("fhir_server")


def install(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, error: FhirError) -> Response:
        return error_response(error, request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        return error_response(FhirError(400, "invalid", f"The request is malformed: {error.errors()}"), request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if not is_api(request.scope["path"]):
            # A person in a browser: a page, through the page layer like any other.
            key = "not_found" if error.status_code == 404 else "invalid"
            return message_page(request.scope, error.status_code, key)
        code = {404: "not-found", 405: "not-supported"}.get(error.status_code, "processing")
        message = str(error.detail)
        if error.status_code == 404:
            message = f"No FHIR interaction at {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"{request.method} is not supported on {request.url.path}"
        return error_response(FhirError(error.status_code, code, message), request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(FhirError(500, "exception", f"Internal error ({error.__class__.__name__}); it has been logged"), request)
