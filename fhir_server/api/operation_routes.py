"""Routes of FHIR operations (`$name`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.authentication import permit, require_system
from fhir_server.api.body import read_body, resource_body
from fhir_server.api.caller import request_caller
from fhir_server.api.instance_routes import repository
from fhir_server.api.negotiation import media_type, prefer
from fhir_server.api.responses import base_url, fhir_response
from fhir_server.api.type_routes import run_search, searches
from fhir_server.interactions import read as reading
from fhir_server.errors import FhirError
from fhir_server.operations import everything, record_areas, validate
from fhir_server.operations.bulk_import import NDJSON_TYPES, Importer, ndjson_lines
from fhir_server.operations.enrol import EnrolOperation, check_caller
from fhir_server.security.server_keys import server_secret

# The secret the import keys its resource ids with (fhir_server.operations.bulk_import).
IMPORT_KEY = "import-ids"

router = APIRouter()


@router.post("/fhir/{resource_type}/$validate", summary="$validate a resource against R4 and a profile")
async def validate_type(request: Request, resource_type: str) -> Response:
    repo = repository(request)
    repo.check_type(resource_type)
    # Validating stores nothing; it is asked by whoever may write the type.
    permit(request, "create", resource_type)
    resource, profile = validate.unpack(await resource_body(request), request.query_params.get("profile"))
    return fhir_response(request, await validate.validate(resource_type, resource, profile, request.app.state.profiles,
                                                          repo, request_caller(request)))


@router.post("/fhir/{resource_type}/{resource_id}/$validate", summary="$validate a resource against R4 and a profile")
async def validate_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    return await validate_type(request, resource_type)


@router.get("/fhir/Patient/{patient_id}/$advance-directives", summary="$advance-directives: the patient's current advance directives")
async def advance_directives(request: Request, patient_id: str) -> Response:
    """The patient's current advance directives (a searchset), 404 for an unknown patient."""
    permit(request, "read", "Patient")
    await reading.read(repository(request), request_caller(request), "Patient", patient_id)
    area = record_areas.area("advance-directives")
    return await run_search(request, area.resource_type, area.search(patient_id, request.query_params.multi_items()))


@router.get("/fhir/Patient/{patient_id}/$everything", summary="$everything: the patient's record as the caller may see it")
async def patient_everything(request: Request, patient_id: str) -> Response:
    """The patient's record as the caller may see it, paged (fhir_server.operations.everything)."""

    def allowed(resource_type: str) -> bool:
        permit(request, "search-type", resource_type, criteria=[])
        return True

    bundle = await everything.everything(searches(request), request_caller(request), patient_id,
                                         request.query_params.multi_items(), allowed, base_url=base_url(request),
                                         strict=prefer(request).strict)
    return fhir_response(request, bundle)


@router.post("/fhir/$import", summary="$import: FHIR NDJSON, one create a line (system callers)")
async def bulk_import(request: Request) -> Response:
    """FHIR NDJSON in the body, each line written as its create would be; the answer counts them."""
    require_system(request, "$import")
    if media_type(request.headers.get("content-type")) not in NDJSON_TYPES:
        raise FhirError(415, "not-supported", f"$import takes FHIR NDJSON ({NDJSON_TYPES[0]}), one resource a line")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise FhirError(415, "not-supported", f"Content-Encoding '{encoding}' is not supported; send gzip or none")
    repo = repository(request)
    key_dir = request.app.state.settings.data_dir if repo.database.capabilities.embedded else None
    secret = await server_secret(IMPORT_KEY, data_dir=key_dir, db=repo.database.db)
    importer = Importer(repo, request_caller(request), request.app.state.scope_matcher, secret)
    lines = ndjson_lines(request.stream(), encoding == "gzip", request.app.state.settings.max_body_bytes)
    try:
        summary = await importer.run(lines)
    except FhirError as exc:
        # The body broke off: what came before it is stored, and the answer says so.
        return fhir_response(request, importer.summary.outcome(exc), status=exc.status)
    if summary.lines == 0:
        raise FhirError(400, "structure", "The body holds no resource")
    return fhir_response(request, summary.outcome())


@router.post("/fhir/$enrol", summary="$enrol: a batch of an insurer's roster (NDJSON)")
async def enrol(request: Request) -> Response:
    """One batch of an insurer's roster (fhir_server.operations.enrol)."""
    check_caller(request_caller(request))
    if media_type(request.headers.get("content-type")) not in NDJSON_TYPES:
        raise FhirError(415, "not-supported", f"$enrol takes FHIR NDJSON ({NDJSON_TYPES[0]}): Patient and RelatedPerson lines")
    state = request.app.state
    if getattr(state, "enrol", None) is None:
        state.enrol = EnrolOperation(repository(request), state.settings)
    return fhir_response(request, await state.enrol.run(await read_body(request)))
