"""Patient compartment searches: `GET /fhir/Patient/{id}/{type}` and `GET /fhir/Patient/{id}/*` (R4 search.html#2.21.1.2)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.caller import request_caller
from fhir_server.api.negotiation import prefer
from fhir_server.api.responses import base_url, fhir_response
from fhir_server.api.instance_routes import repository
from fhir_server.api.type_routes import listed_types, permit_search, searches

router = APIRouter()


@router.get("/fhir/Patient/{patient_id}/{resource_type}", summary="search in the Patient compartment")
async def compartment_search(request: Request, patient_id: str, resource_type: str) -> Response:
    params = request.query_params.multi_items()
    if resource_type == "*":
        types = listed_types(params) or repository(request).engine.compartment.types()
    else:
        types = [resource_type]
    permit_search(request, "search-type", types, params)
    bundle = await searches(request).search(request_caller(request), resource_type, params,
                                            base_url=base_url(request), strict=prefer(request).strict,
                                            compartment=patient_id)
    return fhir_response(request, bundle)
