"""Every failure a client can cause becomes an OperationOutcome with the right status; nothing else leaks."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.responses import error_response, outcome_response
from fhir_server.errors import FhirError, Issue, operation_outcome
from fhir_server.web.layer import message_page
from fhir_server.web.paths import is_api

log = logging.getLogger("fhir_server")
# What a client is told to wait when the store cannot be reached: about a restart of the embedded store.
STORE_RETRY_SECONDS = 5


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

    @app.exception_handler(ConnectionFailure)
    async def store_unreachable(request: Request, error: ConnectionFailure) -> Response:
        # The server's failure, not the client's, and one that passes: 503 and when to come back,
        # never a 500 (the store stopped, restarting, or the network to it cut). A write whose
        # commit the connection lost may or may not have landed, whole either way: the message
        # does not say nothing was stored.
        log.error("store unreachable on %s %s: %s", request.method, request.url.path, error.__class__.__name__)
        body = operation_outcome([Issue("error", "transient", "The record's store cannot be reached at the moment; "
                                        "retry later")])
        return outcome_response(request.scope, body, 503, headers={"Retry-After": str(STORE_RETRY_SECONDS)})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(FhirError(500, "exception", f"Internal error ({error.__class__.__name__}); it has been logged"), request)
