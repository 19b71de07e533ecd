"""min/max of every element (and slice) a profile constrains."""

from __future__ import annotations

from fhir_server.validation.element_rules import ElementRule
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.navigation import Navigator, split_element_id


def check_cardinality(rules: dict[str, ElementRule], navigator: Navigator) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    for rule in rules.values():
        if "." not in rule.id or (not rule.min and rule.max is None):
            continue
        parent_id, name, slice_name = split_element_id(rule.id)
        label = f"{name}:{slice_name}" if slice_name else name
        # Cardinality only binds where the parent exists: `content.attachment.size 1..1`
        # says nothing about a DocumentReference without content.
        for parent in navigator.resolve(parent_id):
            children = navigator.children(parent, parent_id, name, slice_name)
            if rule.min and len(children) < rule.min:
                issues.append(
                    ValidationIssue(
                        "error",
                        "required",
                        [f"{parent.expression}.{name}"],
                        f"{rule.id}: minimum cardinality {rule.min} not met ({len(children)} {label} found)",
                    )
                )
            if rule.max is not None and len(children) > rule.max:
                issues.append(
                    ValidationIssue(
                        "error",
                        "structure",
                        [child.expression for child in children[rule.max :]],
                        f"{rule.id}: maximum cardinality {rule.max} exceeded ({len(children)} {label} found)",
                    )
                )
    return issues
