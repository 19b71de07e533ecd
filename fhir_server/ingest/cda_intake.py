"""A converted CDA document before it is stored (POST /ingest/cda): what its sending facility's
configuration supplies, then the PDSm check, a 422 naming each field it still lacks otherwise."""

from __future__ import annotations

from cda import CdaConversion
from fhir_server import facilities
from fhir_server.errors import FhirError, Issue
from fhir_server.ingest import pdsm


async def complete(conversion: CdaConversion, search: facilities.Search, remembered: facilities.Remembered) -> None:
    entry = next(e for e in conversion.bundle["entry"] if e["fullUrl"] == conversion.document_reference_fullurl)
    document = entry["resource"]
    facility = await facilities.find(search, facilities.custodian_identifiers(document), remembered)
    if facility is not None:
        facilities.apply_defaults(document, facility)
    found = pdsm.problems(document)
    if not found:
        return
    issues = []
    for problem in found:
        text = problem.explained(conversion.warnings)
        if facility is None and problem.element in facilities.SUPPLIED:
            text += "; no sending facility is configured for the document's custodian (fhir-server facilities add)"
        issues.append(Issue("error", problem.code, text, [problem.element]))
    raise FhirError(422, "processing", "", issues=issues)
