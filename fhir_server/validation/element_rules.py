"""Constraints of a profile, merged along its baseDefinition chain, keyed by ElementDefinition.id.

A profile's differential only states what it changes; a child profile inherits every constraint of
its ancestors. Merging per element id (tightest cardinality, child's fixed/pattern/binding wins,
constraints accumulate) lets each check run once per element instead of once per ancestor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ElementRule:
    id: str
    min: int | None = None
    max: int | None = None  # None = unbounded or unchanged
    fixed: tuple[str, Any] | None = None  # (element name such as "fixedUri", value)
    pattern: tuple[str, Any] | None = None
    binding_strength: str | None = None
    binding_value_set: str | None = None
    slicing: dict | None = None
    type_profiles: list[str] = field(default_factory=list)
    constraints: dict[str, dict] = field(default_factory=dict)  # key -> ElementDefinition.constraint

    def absorb(self, element: dict) -> None:
        """Apply one ElementDefinition from a (more specialised) differential on top of this rule."""
        if "min" in element:
            self.min = max(self.min or 0, int(element["min"]))
        if "max" in element:
            new_max = _parse_max(element["max"])
            if new_max is not None:
                self.max = new_max if self.max is None else min(self.max, new_max)
        for key, value in element.items():
            if key.startswith("fixed"):
                self.fixed = (key, value)
            elif key.startswith("pattern"):
                self.pattern = (key, value)
        binding = element.get("binding")
        if binding and binding.get("valueSet"):
            self.binding_strength = binding.get("strength")
            self.binding_value_set = binding["valueSet"]
        if "slicing" in element:
            self.slicing = element["slicing"]
        profiles = [p for t in element.get("type", []) for p in t.get("profile", [])]
        if profiles:
            self.type_profiles = profiles
        for constraint in element.get("constraint", []):
            if constraint.get("key"):
                self.constraints[constraint["key"]] = constraint


def _parse_max(value: str) -> int | None:
    return None if value == "*" else int(value)


def merge_differentials(differentials: list[list[dict]]) -> dict[str, ElementRule]:
    """Merge differentials ordered from the most general ancestor to the profile itself."""
    rules: dict[str, ElementRule] = {}
    for elements in differentials:
        for element in elements:
            element_id = element.get("id") or element["path"]
            rule = rules.get(element_id)
            if rule is None:
                rule = rules[element_id] = ElementRule(id=element_id)
            rule.absorb(element)
    return rules
