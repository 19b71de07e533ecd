"""Patient compartment searches: `GET /fhir/Patient/{id}/{type}` and `GET /fhir/Patient/{id}/*` (R4 search.html#2.21.1.2)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.caller import request_caller
from fhir_server.api.negotiation import prefer
from fhir_server.api.responses import base_url, fhir_response
from fhir_server.api.type_routes import searches

router = APIRouter()


@router.get("/fhir/Patient/{patient_id}/{resource_type}")
async def compartment_search(request: Request, patient_id: str, resource_type: str) -> Response:
    bundle = await searches(request).search(request_caller(request), resource_type, request.query_params.multi_items(),
                                            base_url=base_url(request), strict=prefer(request).strict,
                                            compartment=patient_id)
    return fhir_response(request, bundle)
