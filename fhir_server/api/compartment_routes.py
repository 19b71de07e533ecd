"""Patient compartment searches: `GET /fhir/Patient/{id}/{type}` and `GET /fhir/Patient/{id}/*` (R4 search.html#2.21.1.2)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.instance_routes import repository
from fhir_server.api.negotiation import prefer
from fhir_server.api.responses import base_url, fhir_response
from fhir_server.api.type_routes import page_size
from fhir_server.errors import FhirError
from fhir_server.operations.system_search import search_types
from fhir_server.search.request import parse_request
from fhir_server.search.searchset import searchset
from fhir_server.storage.repository import check_id

router = APIRouter()
EVERY_TYPE = "*"


@router.get("/fhir/Patient/{patient_id}/{resource_type}")
async def compartment_search(request: Request, patient_id: str, resource_type: str) -> Response:
    repo = repository(request)
    check_id(patient_id)
    members = repo.engine.compartment.types()
    search = parse_request(request.query_params.multi_items())
    search.compartment = patient_id
    count = page_size(request, search.count)
    strict = prefer(request).strict
    if resource_type == EVERY_TYPE:
        # `_type` narrows `*` to some of the compartment's types (it is also how `next` links say it).
        search.types = search.types or members
        outside = [t for t in search.types if t not in members]
        if outside:
            raise FhirError(400, "invalid", f"{', '.join(outside)} cannot be in a Patient compartment", ["_type"])
        result = await search_types(repo, search, base_url=base_url(request), strict=strict, count=count)
    else:
        repo.check_type(resource_type)
        if resource_type not in members:
            raise FhirError(400, "invalid", f"{resource_type} resources are not in the Patient compartment (R4 "
                                            "CompartmentDefinition patient)")
        result = await repo.search(resource_type, search, base_url=base_url(request), strict=strict, count=count)
    path = f"Patient/{patient_id}/{resource_type}"
    return fhir_response(request, searchset(base_url(request), path, search, result, count))
