"""Required and extensible bindings to the ValueSets shipped in profiles/.

Required: a code outside the ValueSet is an error. Extensible: a code outside the ValueSet is
allowed but reported as a warning, so senders learn the expected code. Weaker strengths are not
checked. Messages do not repeat the instance's codes (a patch may have put stored content there):
the expression points at them.
"""

from __future__ import annotations

from fhir_server.validation.element_rules import ElementRule
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.navigation import Navigator
from fhir_server.validation.slicing import codings_of
from fhir_server.validation.terminology import Terminology

_CHECKED = {"required": "error", "extensible": "warning"}


def check_bindings(
    rules: dict[str, ElementRule], navigator: Navigator, terminology: Terminology
) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    for rule in rules.values():
        severity = _CHECKED.get(rule.binding_strength or "")
        if severity is None or not rule.binding_value_set:
            continue
        nodes = navigator.resolve(rule.id)
        if not nodes:
            continue
        value_set = rule.binding_value_set
        if not terminology.knows_value_set(value_set):
            issues.append(
                ValidationIssue(
                    "information",
                    "not-found",
                    [nodes[0].expression],
                    f"{rule.id}: ValueSet {value_set} is not known to this server; binding not checked",
                )
            )
            continue
        for node in nodes:
            codings = codings_of(node.value)
            if not codings and rule.binding_strength == "extensible":
                continue  # text-only CodeableConcept: allowed by an extensible binding
            if any(terminology.contains(value_set, system, code) for system, code in codings):
                continue
            issues.append(
                ValidationIssue(
                    severity,
                    "code-invalid",
                    [node.expression],
                    f"{rule.id}: {'no code' if not codings else 'the code'} is not in ValueSet {value_set} "
                    f"({rule.binding_strength} binding)",
                )
            )
    return issues
