"""FHIRPath invariants (`ElementDefinition.constraint.expression`), evaluated with fhirpathpy."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from fhir_server.validation.element_rules import ElementRule
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.navigation import Navigator


@lru_cache(maxsize=512)
def _compiled(expression: str) -> Callable[..., list]:
    # Parsing dominates the cost of an evaluation; profiles reuse a small set of expressions.
    return fhirpathpy.compile(expression, models["r4"])


def check_invariants(rules: dict[str, ElementRule], navigator: Navigator) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    resource = navigator.root.value
    for rule in rules.values():
        constraints = [c for c in rule.constraints.values() if c.get("expression")]
        if not constraints:
            continue
        element_path = _element_path(rule.id)
        for node in navigator.resolve(rule.id):
            # Inside the resource, fhirpathpy needs the element's path to resolve choice types
            # (`value` of Observation.component is its valueQuantity); the root carries resourceType.
            value = ResourceNode.create_node(node.value, element_path) if "." in element_path else node.value
            for constraint in constraints:
                issue = _evaluate(constraint, node.expression, value, resource)
                if issue is not None:
                    issues.append(issue)
    return issues


def _element_path(element_id: str) -> str:
    """`Observation.component:SystolicBP.code` -> `Observation.component.code` (slices are not types)."""
    return ".".join(part.split(":", 1)[0] for part in element_id.split("."))


def _evaluate(constraint: dict, expression_path: str, value: Any, resource: Any) -> ValidationIssue | None:
    key = constraint["key"]
    try:
        result = _compiled(constraint["expression"])(value, {"resource": resource, "rootResource": resource})
    except Exception as error:  # noqa: BLE001 - any evaluation failure is reported, never fatal
        return ValidationIssue(
            "warning", "invariant", [expression_path], f"{key}: could not be evaluated ({error})"
        )
    # FHIRPath: the invariant fails only when it evaluates to false; an empty result is not a failure.
    if not any(item is False for item in result):
        return None
    severity = "warning" if constraint.get("severity") == "warning" else "error"
    return ValidationIssue(severity, "invariant", [expression_path], f"{key}: {constraint.get('human', '')}".strip())
