"""Which slice a repeating element belongs to, and the `closed` slicing rule.

Slice cardinality itself is checked by cardinality.py: the navigator resolves a slice id to the
items that belong to it, so `identifier:INS-NIR 1..1` is an ordinary min/max check.
Supported discriminators: `value` and `pattern`, on a path (`system`, `url`, `type`,
`coding.system`...) or on `$this`. The slice's value comes from the fixed[x]/pattern[x] of the
discriminator element, from the extension profile url (for `url` on extensions) or, failing
both, from a required binding (membership in the ValueSet).
"""

from __future__ import annotations

from typing import Any

from fhir_server.validation.element_rules import ElementRule
from fhir_server.validation.fixed_pattern import pattern_matches
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.navigation import Navigator
from fhir_server.validation.terminology import Terminology


def values_at(value: Any, path: str) -> list[Any]:
    """Values reached by a simple dotted path (lists flattened)."""
    current = [value]
    for part in path.split("."):
        following: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item:
                found = item[part]
                following.extend(found if isinstance(found, list) else [found])
        current = following
    return current


def codings_of(value: Any) -> list[tuple[str | None, str]]:
    """(system, code) pairs carried by a code, Coding or CodeableConcept."""
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [(c.get("system"), c["code"]) for c in value["coding"] if isinstance(c, dict) and "code" in c]
    if "code" in value:
        return [(value.get("system"), value["code"])]
    return []


class SliceMatcher:
    def __init__(self, rules: dict[str, ElementRule], terminology: Terminology) -> None:
        self._rules = rules
        self._terminology = terminology

    def matches(self, sliced_id: str, slice_name: str, value: Any) -> bool:
        sliced = self._rules.get(sliced_id)
        discriminators = (sliced.slicing or {}).get("discriminator", []) if sliced else []
        if not discriminators:
            return False  # without a discriminator nothing can be attributed to the slice
        slice_id = f"{sliced_id}:{slice_name}"
        return all(self._matches_discriminator(d, slice_id, value) for d in discriminators)

    def _nested_slice_rule(self, slice_id: str, path: str) -> ElementRule | None:
        """The rule a discriminator path reaches through a slice of its own: R4 `bp` slices
        `component` on `code.coding.code`, fixed at `component:SystolicBP.code.coding:SBPCode.code`."""
        prefix = f"{slice_id}."
        for rule_id, rule in self._rules.items():
            if rule_id.startswith(prefix) and (rule.fixed is not None or rule.pattern is not None):
                if ".".join(part.split(":", 1)[0] for part in rule_id[len(prefix):].split(".")) == path:
                    return rule
        return None

    def _matches_discriminator(self, discriminator: dict, slice_id: str, value: Any) -> bool:
        path = discriminator.get("path", "$this")
        if discriminator.get("type") not in ("value", "pattern"):
            return False
        target_id = slice_id if path == "$this" else f"{slice_id}.{path}"
        actual = [value] if path == "$this" else values_at(value, path)
        target = self._rules.get(target_id) or self._nested_slice_rule(slice_id, path)
        if target is not None and target.fixed is not None:
            return any(item == target.fixed[1] for item in actual)
        if target is not None and target.pattern is not None:
            return any(pattern_matches(target.pattern[1], item) for item in actual)
        slice_rule = self._rules.get(slice_id)
        if path == "url" and slice_rule is not None and slice_rule.type_profiles:
            return any(item in slice_rule.type_profiles for item in actual)
        if target is not None and target.binding_strength == "required" and target.binding_value_set:
            return any(
                self._terminology.contains(target.binding_value_set, system, code)
                for item in actual
                for system, code in codings_of(item)
            )
        return False


def check_closed_slicing(
    rules: dict[str, ElementRule], navigator: Navigator, matcher: SliceMatcher
) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    for rule in rules.values():
        if not rule.slicing or rule.slicing.get("rules") != "closed":
            continue
        prefix = f"{rule.id}:"
        slice_names = [rid[len(prefix) :] for rid in rules if rid.startswith(prefix) and "." not in rid[len(prefix) :]]
        for node in navigator.resolve(rule.id):
            if not any(matcher.matches(rule.id, name, node.value) for name in slice_names):
                issues.append(
                    ValidationIssue(
                        "error",
                        "structure",
                        [node.expression],
                        f"{rule.id}: slicing is closed and this item matches none of the slices {slice_names}",
                    )
                )
    return issues
