"""Which searches may name the patients (`pat`, the shard key's first field) of what they match.

A resource's `pat` is the patient its type's first Patient-compartment parameter names
(fhir_server.storage.patient_key). A search on that parameter, or on `patient` where it reads the
same element, naming `Patient/X` therefore matches only resources with `pat` X, provided the element
holds one reference at most (its R4 cardinality, `SearchParam.single`): adding `pat` changes no
answer and lets a sharded cluster ask only those patients' shards. Elsewhere it would drop matches:
a multi-valued element (Appointment.participant.actor) may name X after another patient; a later
compartment parameter (Observation.performer) names a patient whose record the resource is not in;
a Binary or a List seen as the document it follows (fhir_server.storage.repository.FOLLOWERS)
takes that document's patient. Such searches stay across shards (docs/SCALING.md).
"""

from __future__ import annotations

import re

from fhir_server.definitions.compartment import COMPARTMENT, patient_compartment_params
from fhir_server.search.filters.reference import reference_keys
from fhir_server.search.parameters import SearchParam, SearchParameterRegistry
from fhir_server.search.request import Criterion

# Patients one search may pin: past this a `$in` is long, and the search reads across records anyway.
MAX_PINNED = 20
# Types whose `pat` may come from another resource (fhir_server.storage.repository.FOLLOWERS).
FOLLOWING_TYPES = ("Binary", "List")
# `X.subject.where(resolve() is Patient)` reads the element `X.subject`.
_FILTER = re.compile(r"\.where\(.*\)$")
_PATIENT_KEY = re.compile(rf"^{COMPARTMENT}/([A-Za-z0-9\-.]{{1,64}})$")
_OTHER_TYPE_KEY = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
ONLY_PATIENTS = ".where(resolve() is Patient)"


def _element(param: SearchParam) -> str:
    return _FILTER.sub("", param.expression)


def _first(registry: SearchParameterRegistry, resource_type: str) -> SearchParam | None:
    """The type's first compartment parameter when its element holds one value, else None."""
    params = patient_compartment_params().get(resource_type, ())
    if not params or resource_type in FOLLOWING_TYPES or resource_type == COMPARTMENT:
        return None
    first = registry.get(resource_type, params[0])
    return first if first is not None and first.single and "|" not in first.expression else None


def pins_by(registry: SearchParameterRegistry, resource_type: str, code: str) -> bool:
    """Whether naming a patient in parameter `code` names the `pat` of every match."""
    first = _first(registry, resource_type)
    if first is None:
        return False
    if code == first.code:
        return True
    param = registry.get(resource_type, code)
    return param is not None and param.single and _element(param) == _element(first)


def pinned_patients(registry: SearchParameterRegistry, resource_type: str, criterion: Criterion,
                    base_url: str) -> list[str] | None:
    """The patients every match of `criterion` belongs to, or None when it does not say."""
    if resource_type == COMPARTMENT and criterion.name == "_id" and criterion.modifier is None:
        # A Patient's `pat` is its own id.
        ids = [v for v in criterion.values if _PATIENT_KEY.match(f"{COMPARTMENT}/{v}")]
        return ids if ids and len(ids) == len(criterion.values) and len(set(ids)) <= MAX_PINNED else None
    if criterion.chain is not None or criterion.modifier not in (None, COMPARTMENT) \
            or not pins_by(registry, resource_type, criterion.name):
        return None
    param = registry.get(resource_type, criterion.name)
    assert param is not None
    keys = [key for value in criterion.values
            for key in reference_keys(value, list(param.targets), criterion.modifier, base_url)]
    return patients_of_keys(param, keys)


def patients_of_keys(param: SearchParam, keys: list[str]) -> list[str] | None:
    """The patients named by the reference keys a search on `param` (one that `pins_by`) compares,
    or None when a key may match a resource of no record or of another patient's."""
    # `patient=X` also asks for `Group/X`, which an element filtered to Patients never holds.
    only_patients = param.expression.endswith(ONLY_PATIENTS)
    patients: list[str] = []
    for key in keys:
        # Each key must be a relative `Patient/id`, the only form `pat` is taken from (an absolute
        # URL or another type's reference is in no record).
        match = _PATIENT_KEY.match(key)
        if match is not None:
            patients.append(match.group(1))
        elif not (only_patients and _OTHER_TYPE_KEY.match(key)):
            return None
    patients = list(dict.fromkeys(patients))
    return patients if patients and len(patients) <= MAX_PINNED else None


def compartment_pins(registry: SearchParameterRegistry, resource_type: str) -> bool:
    """Whether a type's resources in patient X's compartment all have `pat` X: every compartment
    parameter of the type reads its first one's (single-valued) element."""
    params = patient_compartment_params().get(resource_type, ())
    return bool(params) and all(pins_by(registry, resource_type, code) for code in params)
