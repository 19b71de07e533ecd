"""The Patient compartment of R4 (`profiles/r4/compartmentdefinition-patient.json`): for each
resource type, the search parameters that put a resource of that type in a patient's compartment."""

from __future__ import annotations

from functools import cache

from fhir_server.definitions.files import R4_DIR, read_json

COMPARTMENT = "Patient"


@cache
def patient_compartment_params() -> dict[str, tuple[str, ...]]:
    """Type -> its parameters, in the definition's order; types outside the compartment are absent."""
    definition = read_json(R4_DIR / "compartmentdefinition-patient.json")
    return {entry["code"]: tuple(entry["param"]) for entry in definition["resource"] if entry.get("param")}
