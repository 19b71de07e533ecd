"""ValueSet membership, computed from the ValueSets and CodeSystems shipped in profiles/.

Only `compose` is interpreted (include/exclude by concept list, by whole CodeSystem, by other
ValueSet); filters are not supported because none of our value sets uses them. An include of a
whole CodeSystem we do not ship (LOINC, for instance) accepts every code of that system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fhir_server.validation.profile_registry import ProfileRegistry


@dataclass
class Expansion:
    codes: set[tuple[str, str]] = field(default_factory=set)  # (system, code)
    open_systems: set[str] = field(default_factory=set)  # every code of these systems is a member

    def contains(self, system: str | None, code: str) -> bool:
        if system is None:
            # A bare `code` element carries no system: membership is decided on the code alone.
            return any(member_code == code for _, member_code in self.codes)
        return system in self.open_systems or (system, code) in self.codes

    def merge(self, other: Expansion) -> None:
        self.codes |= other.codes
        self.open_systems |= other.open_systems


class Terminology:
    def __init__(self, registry: ProfileRegistry) -> None:
        self._registry = registry
        self._expansions: dict[str, Expansion | None] = {}

    def knows_value_set(self, url: str) -> bool:
        return self._registry.get_value_set(url) is not None

    def expansion(self, url: str) -> Expansion | None:
        """Members of a ValueSet, or None when the registry does not ship it."""
        if url not in self._expansions:
            self._expansions[url] = None  # guards against value sets that include each other
            value_set = self._registry.get_value_set(url)
            if value_set is not None:
                self._expansions[url] = self._expand(value_set)
        return self._expansions[url]

    def _expand(self, value_set: dict) -> Expansion:
        compose = value_set.get("compose", {})
        result = Expansion()
        for include in compose.get("include", []):
            result.merge(self._component(include))
        for exclude in compose.get("exclude", []):
            removed = self._component(exclude)
            result.codes -= removed.codes
        return result

    def _component(self, component: dict) -> Expansion:
        result = Expansion()
        system = component.get("system")
        if system and component.get("concept"):
            result.codes |= {(system, concept["code"]) for concept in component["concept"]}
        elif system:
            code_system = self._registry.get_code_system(system)
            if code_system is None:
                result.open_systems.add(system)
            else:
                result.codes |= {(system, code) for code in _all_codes(code_system.get("concept", []))}
        for url in component.get("valueSet", []):
            nested = self.expansion(url)
            if nested is not None:
                result.merge(nested)
        return result

    def contains(self, value_set_url: str, system: str | None, code: str) -> bool | None:
        """True/False for membership, None when the ValueSet is unknown."""
        expansion = self.expansion(value_set_url)
        return None if expansion is None else expansion.contains(system, code)


def _all_codes(concepts: list[dict]) -> list[str]:
    codes: list[str] = []
    for concept in concepts:
        codes.append(concept["code"])
        codes.extend(_all_codes(concept.get("concept", [])))
    return codes
