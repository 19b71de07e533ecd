"""Routes of FHIR operations (`$name`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.authentication import permit
from fhir_server.api.body import resource_body
from fhir_server.api.caller import request_caller
from fhir_server.api.instance_routes import repository
from fhir_server.api.responses import fhir_response
from fhir_server.api.type_routes import run_search
from fhir_server.interactions import read as reading
from fhir_server.operations import record_areas, validate

router = APIRouter()


@router.post("/fhir/{resource_type}/$validate")
async def validate_type(request: Request, resource_type: str) -> Response:
    repo = repository(request)
    repo.check_type(resource_type)
    # Validating stores nothing; it is asked by whoever may write the type.
    permit(request, "create", resource_type)
    resource, profile = validate.unpack(await resource_body(request), request.query_params.get("profile"))
    return fhir_response(request, validate.validate(resource_type, resource, profile, request.app.state.profiles))


@router.post("/fhir/{resource_type}/{resource_id}/$validate")
async def validate_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    return await validate_type(request, resource_type)


@router.get("/fhir/Patient/{patient_id}/$advance-directives")
async def advance_directives(request: Request, patient_id: str) -> Response:
    """The patient's current advance directives (a searchset), 404 for an unknown patient."""
    permit(request, "read", "Patient")
    await reading.read(repository(request), request_caller(request), "Patient", patient_id)
    area = record_areas.area("advance-directives")
    return await run_search(request, area.resource_type, area.search(patient_id, request.query_params.multi_items()))
