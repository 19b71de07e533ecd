"""The patient a stored resource belongs to: the `pat` key of its current and history documents.

Per docs/DECISIONS.md (Access rules), a resource belongs to the record of the patient named by the
first parameter of the R4 Patient CompartmentDefinition for its type that holds a Patient
reference; a Patient belongs to itself. Patient-scoped rules then are one equality on an indexed
top-level scalar, which both stores answer from their index.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

from fhir_server.search.fields import field_key

COMPARTMENT_FILE = Path(__file__).resolve().parents[2] / "profiles" / "patient-compartment.json"
PATIENT_PREFIX = "Patient/"


@cache
def compartment_params() -> dict[str, tuple[str, ...]]:
    """Type -> the parameters placing it in a patient's compartment, in the definition's order."""
    data = orjson.loads(COMPARTMENT_FILE.read_bytes())
    return {rtype: tuple(params) for rtype, params in data["param"].items()}


def patient_of(resource_type: str, resource_id: str, ix: dict[str, Any]) -> str | None:
    """The patient id, read from the resource's search index values (references as `Patient/id`).

    Only relative references count: an absolute URL may name another server's patient.
    """
    if resource_type == "Patient":
        return resource_id
    for code in compartment_params().get(resource_type, ()):
        values = ix.get(field_key(code))
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and value.startswith(PATIENT_PREFIX):
                return value[len(PATIENT_PREFIX):]
    return None
