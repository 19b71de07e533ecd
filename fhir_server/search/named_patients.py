"""The records a search names: the patients its Patient-compartment parameters (or `patient`),
`Patient?_id`, a Patient identifier chain or modifier, or its compartment point at. Reading is
decided per record (fhir_server.access.rules), so a search naming a record the caller may not open
is refused as a read of it would be, and one naming none reads across the records they may open."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_server.definitions.compartment import patient_compartment_params
from fhir_server.search.request import SearchRequest

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository, Session

PATIENT = "Patient/"
# Patients named by one search at most: more is a search across records.
MAX_NAMED = 20


def _patient_id(value: str) -> str | None:
    """`id`, `Patient/id` or `[base]/Patient/id`."""
    if PATIENT in value:
        value = value.rsplit(PATIENT, 1)[1]
    return value if value and "/" not in value else None


async def named_patients(repository: Repository, resource_type: str, request: SearchRequest,
                         session: Session = None) -> list[str] | None:
    if request.compartment is not None:
        return [request.compartment]
    params = {"patient", *patient_compartment_params().get(resource_type, ())}
    named: list[str] = []
    for criterion in request.criteria:
        if resource_type == "Patient" and criterion.name == "_id" and criterion.modifier is None:
            ids = [v for v in criterion.values if v]
        elif criterion.name not in params or criterion.modifier not in (None, "Patient", "identifier"):
            continue
        elif criterion.modifier == "identifier" or criterion.chain == "identifier":
            ids = []
            for value in criterion.values:
                ids += await repository.ids("Patient", [("identifier", value)], session, MAX_NAMED)
            if not ids:
                # Names a patient this server does not hold: nothing can match.
                return []
        elif criterion.chain is None:
            found = [_patient_id(v) for v in criterion.values]
            if not all(found) or (criterion.modifier is None and resource_type != "Patient"
                                  and not all(PATIENT in v or "/" not in v for v in criterion.values)):
                continue
            ids = [i for i in found if i]
        else:
            continue
        named.extend(ids)
    if not named or len(set(named)) > MAX_NAMED:
        return None
    return list(dict.fromkeys(named))
