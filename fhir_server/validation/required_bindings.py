"""Required bindings of the base R4 definitions (Observation.status, Patient.gender, Identifier.use
wherever an Identifier appears...), checked against the whole ValueSet.

Which elements are bound, and to what, is data from the R4 definitions (profiles/r4/, with the
ValueSets and CodeSystems in profiles/ValueSet/R4 and profiles/CodeSystem/R4). The R4B models'
code lists are not used: some stop short of the ValueSet (`enum_values` ending in "+", as for
Observation.status and Encounter.status), others are missing (AuditEvent.action, Quantity.comparator).
Messages say what is allowed, never the value found: the expression points at it, and a patch
may have put stored content there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhir_server.definitions.elements import walk
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.slicing import codings_of

if TYPE_CHECKING:
    from fhir_server.validation.profile_registry import ProfileRegistry

# Up to this many codes are listed in the message; longer ValueSets are named only.
_LISTED_CODES = 20


def check_required_bindings(resource: dict[str, Any], registry: ProfileRegistry) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    terminology = registry.terminology
    for node in walk(resource):
        value_set = registry.required_binding(node.element.path)
        if value_set is None or terminology.expansion(value_set) is None:
            continue  # not bound, or its ValueSet is not shipped (test_required_bindings_data guards this)
        codings = codings_of(node.value)
        if any(terminology.contains(value_set, system, code) for system, code in codings):
            continue
        issues.append(ValidationIssue("error", "code-invalid", [node.expression],
                                      f"{node.element.path} takes a code of ValueSet {value_set} (required binding){_allowed(registry, value_set)}"))
    return issues


def _allowed(registry: ProfileRegistry, value_set: str) -> str:
    expansion = registry.terminology.expansion(value_set)
    if expansion is None or expansion.open_systems or len(expansion.codes) > _LISTED_CODES:
        return ""
    return ": " + ", ".join(sorted({code for _, code in expansion.codes}))
