"""fixed[x] (exact value) and pattern[x] (the instance must contain at least this) checks.

Messages give the profile's value, never the instance's: a patch may have put stored content there.
"""

from __future__ import annotations

import json
from typing import Any

from fhir_server.validation.element_rules import ElementRule
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.navigation import Navigator


def pattern_matches(pattern: Any, value: Any) -> bool:
    """FHIR pattern semantics: every property of the pattern is present with the same value;
    every item of a pattern list matches some item of the instance list."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and pattern_matches(v, value[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(pattern_matches(p, v) for v in value) for p in pattern)
    return pattern == value


def check_fixed_and_pattern(rules: dict[str, ElementRule], navigator: Navigator) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    for rule in rules.values():
        if rule.fixed is None and rule.pattern is None:
            continue
        for node in navigator.resolve(rule.id):
            if rule.fixed is not None and node.value != rule.fixed[1]:
                issues.append(
                    ValidationIssue(
                        "error",
                        "value",
                        [node.expression],
                        f"{rule.id}: value must be exactly {_show(rule.fixed[1])}",
                    )
                )
            if rule.pattern is not None and not pattern_matches(rule.pattern[1], node.value):
                issues.append(
                    ValidationIssue(
                        "error",
                        "value",
                        [node.expression],
                        f"{rule.id}: value must match the pattern {_show(rule.pattern[1])}",
                    )
                )
    return issues


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
