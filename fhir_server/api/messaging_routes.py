"""Routes of secure messaging's operations (fhir_server.messaging.read_state)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.authentication import permit
from fhir_server.api.caller import request_caller
from fhir_server.api.instance_routes import repository
from fhir_server.api.responses import fhir_response
from fhir_server.messaging import read_state

router = APIRouter()


@router.post("/fhir/Communication/{message_id}/$mark-read")
async def mark_read(request: Request, message_id: str) -> Response:
    """The message, its `received` time set by this first read of its recipient."""
    permit(request, "update", "Communication")
    stored = await read_state.mark_read(repository(request), request_caller(request), message_id)
    return fhir_response(request, stored.resource)


@router.get("/fhir/Patient/{patient_id}/$unread-messages")
async def unread_messages(request: Request, patient_id: str) -> Response:
    """Per thread the caller sees in the record, the messages to them not yet marked read."""
    permit(request, "search-type", "Communication")
    return fhir_response(request, await read_state.unread(repository(request), request_caller(request), patient_id))
