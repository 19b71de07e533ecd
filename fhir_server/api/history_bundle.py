"""The HTTP side of instance, type and system history (fhir_server.interactions.history)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.caller import request_caller
from fhir_server.api.responses import base_url, fhir_response


async def history_response(request: Request, resource_type: str | None, resource_id: str | None) -> Response:
    bundle = await request.app.state.history.history(
        request_caller(request), resource_type, resource_id, request.query_params.multi_items(),
        base_url=base_url(request))
    return fhir_response(request, bundle)
