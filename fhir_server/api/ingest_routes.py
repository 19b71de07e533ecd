"""Ingest endpoints: a CDA R2 document or an HL7 v2 message in, resources in the record out."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from cda.convert import convert_cda
from cda.errors import CdaError
from fhir_server.api.authentication import require_system
from fhir_server.api.caller import request_caller
from fhir_server.api.body import read_body
from fhir_server.api.instance_routes import repository
from fhir_server.api.negotiation import media_type, prefer
from fhir_server.api.responses import base_url, json_response, version_headers, location
from fhir_server.api.type_routes import searches
from fhir_server.errors import FhirError, Issue, operation_outcome
from fhir_server.ingest import cda_intake, dry_run
from fhir_server.interactions import read as reading
from fhir_server.ingest.hl7v2.intake import handle_message
from fhir_server.observability.ingest import counted
from fhir_server.operations.transaction import TransactionService

router = APIRouter()
CDA_TYPES = {"application/hl7-cda+xml", "application/xml", "text/xml"}
HL7V2_TYPES = {"x-application/hl7-v2+er7", "application/hl7-v2", "text/plain"}
CDA_STATUS = {"invalid-xml": 400, "forbidden-xml": 400, "not-cda": 400, "too-large": 413, "no-patient": 422}
# Parsing a large document would hold the event loop; small ones are cheaper to convert inline.
INLINE_LIMIT = 1024 * 1024


DRY_RUN = (f"With `?{dry_run.PARAMETER}=true` the whole intake runs (parse, map, PDSm check, identity "
           "resolution, duplicate check, access rules, the transaction's writes) and is rolled back: nothing is "
           "stored. A refusal is answered as without it; an acceptance with 200 and a Parameters: `outcome` (each "
           "resource and what storing would do to it, and the converter's remarks), `bundle` (the transaction that "
           "would be written)")


@router.post("/ingest/cda", summary="Store a CDA R2 document",
             description="A CDA R2 document (CI-SIS) becomes a DocumentReference, its Binary and the resources its "
                         "structured sections carry, in the record of its patient. " + DRY_RUN + ".")
@counted("cda")
async def ingest_cda(request: Request) -> Response:
    require_system(request, "POST /ingest/cda")
    rehearsal = dry_run.requested(request.query_params.get(dry_run.PARAMETER))
    if media_type(request.headers.get("content-type")) not in CDA_TYPES:
        raise FhirError(415, "not-supported", f"POST /ingest/cda takes one of {', '.join(sorted(CDA_TYPES))}")
    data = await read_body(request)
    try:
        conversion = convert_cda(data) if len(data) <= INLINE_LIMIT else await asyncio.to_thread(convert_cda, data)
    except CdaError as error:
        raise FhirError(CDA_STATUS.get(error.code, 400), "invalid", f"{error.code}: {error.message}") from error
    service = TransactionService(repository(request), searches(request), request_caller(request), dry_run=rehearsal)
    await cda_intake.complete(conversion, service.find_by_identifier, repository(request).facilities)
    response = await service.transaction(conversion.bundle, conversion.contents)
    if rehearsal:
        return json_response(dry_run.answer(response, base_url(request), conversion.warnings), 200)
    entries = conversion.bundle["entry"]
    index = next(i for i, e in enumerate(entries) if e.get("fullUrl") == conversion.document_reference_fullurl)
    answer = response["entry"][index]["response"]
    created = answer["status"].startswith("201")
    found = await reading.read(repository(request), request_caller(request), "DocumentReference",
                               answer["location"].split("/")[1])
    stored = found.stored
    headers = {**version_headers(stored), "Location": location(request, stored)}
    warnings = [Issue("warning", "informational", w) for w in conversion.warnings]
    if prefer(request).return_ == "OperationOutcome":
        message = Issue("information", "informational", "Document stored" if created else "Document already in the record")
        return json_response(operation_outcome([message, *warnings]), 201 if created else 200, headers=headers)
    return json_response(found.resource, 201 if created else 200, headers=headers)


@router.post("/ingest/hl7v2", summary="Process an HL7 v2 message",
             description="An HL7 v2 message (ER7) is converted and stored; the answer is its ACK (AA, or AE/AR with "
                         "an ERR segment). " + DRY_RUN + ", and `ack` (the AA the message would get).")
@counted("hl7v2")
async def ingest_hl7v2(request: Request) -> Response:
    require_system(request, "POST /ingest/hl7v2")
    rehearsal = dry_run.requested(request.query_params.get(dry_run.PARAMETER))
    if media_type(request.headers.get("content-type")) not in HL7V2_TYPES:
        raise FhirError(415, "not-supported", f"POST /ingest/hl7v2 takes one of {', '.join(sorted(HL7V2_TYPES))}")
    message = await read_body(request)
    result = await handle_message(message, TransactionService(repository(request), searches(request),
                                                              request_caller(request), dry_run=rehearsal))
    if rehearsal and result.status == "AA":
        notes = result.warnings
        if result.duplicate:
            notes = [*notes, "This message was processed before (same sender, MSH-10 and content): it would be "
                             "acknowledged again and nothing stored"]
        stored = result.stored or {"entry": []}
        return json_response(dry_run.answer(stored, base_url(request), notes, result.ack), 200)
    return Response(result.ack, status_code=result.http_status, media_type="x-application/hl7-v2+er7")
