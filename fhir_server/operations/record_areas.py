"""Operations that list one dedicated area of a patient's record (`GET /fhir/Patient/{id}/$name`).

Each area is a search kept as data in `profiles/record-areas.json`, so the operation and the
search it stands for (`GET /fhir/DocumentReference?patient=...&type=<the area's types>&status=current` for
`$advance-directives`) always answer the same; the operation adds that the patient must exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orjson

AREAS_FILE = Path(__file__).resolve().parents[2] / "profiles" / "record-areas.json"
# Result parameters a caller may add to an area listing; criteria are the area's own.
RESULT_PARAMETERS = {"_count", "_sort", "_summary", "_elements", "_include", "_revinclude", "_total", "_format"}


@dataclass(frozen=True)
class Area:
    resource_type: str
    patient_parameter: str
    criteria: tuple[tuple[str, str], ...]

    def search(self, patient_id: str, asked: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The search parameters that list the area for one patient, with the caller's result parameters."""
        extra = [(name, value) for name, value in asked if name.split(":", 1)[0] in RESULT_PARAMETERS]
        return [*self.criteria, (self.patient_parameter, f"Patient/{patient_id}"), *extra]


@cache
def area(name: str) -> Area:
    definition = orjson.loads(AREAS_FILE.read_bytes())["areas"][name]
    return Area(definition["resourceType"], definition["patientParameter"], tuple(tuple(c) for c in definition["criteria"]))
