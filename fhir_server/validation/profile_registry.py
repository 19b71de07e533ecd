"""Conformance resources the server enforces, loaded once from the `profiles/` directory.

Each kind has its folder (`profiles/ValueSet/...`), sub-folders included: `R4/` holds what the base
specification defines. `profiles/r4/required-bindings.json` lists the base R4 required bindings.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import orjson

from fhir_server.definitions.elements import type_ancestry
from fhir_server.validation.code_profiles import CodeProfiles
from fhir_server.validation.element_rules import ElementRule, merge_differentials
from fhir_server.validation.terminology import Terminology

# Sub-directories of profiles/ this registry reads; others (SearchParameter...) belong to other modules.
_KINDS = ("StructureDefinition", "ValueSet", "CodeSystem")
_REQUIRED_BINDINGS = Path("r4") / "required-bindings.json"


def canonical_without_version(url: str) -> str:
    """`http://x/StructureDefinition/p|1.0` and `http://x/StructureDefinition/p` name the same profile."""
    return url.split("|", 1)[0]


class ProfileRegistry:
    def __init__(
        self,
        structure_definitions: dict[str, dict],
        value_sets: dict[str, dict],
        code_systems: dict[str, dict],
        required_bindings: dict[str, str] | None = None,
        code_profiles: CodeProfiles | None = None,
    ) -> None:
        self._structure_definitions = structure_definitions
        self._value_sets = value_sets
        self._code_systems = code_systems
        self._required_bindings = required_bindings or {}
        self._binding_of: dict[str, str | None] = {}  # element path -> ValueSet, by required_binding
        self._rules: dict[str, dict[str, ElementRule]] = {}
        self.code_profiles = code_profiles or CodeProfiles({})
        self.terminology = Terminology(self)
        # Where `load` read it from: two registries of one source check alike (validation.passed).
        self.source: tuple[str, frozenset[str]] | None = None

    @classmethod
    def load(cls, profiles_dir: Path, waived: Collection[str] = ()) -> ProfileRegistry:
        """`waived`: the settings that are on among those code-profile rules name in `waivedBy`."""
        by_kind: dict[str, dict[str, dict]] = {kind: {} for kind in _KINDS}
        for kind in _KINDS:
            folder = profiles_dir / kind
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*.json")):
                resource = orjson.loads(path.read_bytes())
                if resource.get("resourceType") != kind:
                    raise ValueError(f"{path} holds a {resource.get('resourceType')}, expected {kind}")
                url = resource.get("url")
                if not url:
                    raise ValueError(f"{path} has no canonical url")
                if url in by_kind[kind]:
                    raise ValueError(f"{path} repeats the canonical url {url}")
                by_kind[kind][url] = resource
        bindings_file = profiles_dir / _REQUIRED_BINDINGS
        bindings = orjson.loads(bindings_file.read_bytes())["bindings"] if bindings_file.is_file() else {}
        code_profiles = CodeProfiles.load(profiles_dir / "code-profiles.json", waived)
        unknown = sorted({url for urls in code_profiles.by_code.values() for url in urls} - set(by_kind["StructureDefinition"]))
        if unknown:
            raise ValueError(f"code-profiles.json names profiles not in {profiles_dir}: {', '.join(unknown)}")
        registry = cls(by_kind["StructureDefinition"], by_kind["ValueSet"], by_kind["CodeSystem"], bindings, code_profiles)
        registry.source = (str(profiles_dir.resolve()), frozenset(waived))
        return registry

    def get_structure_definition(self, url: str) -> dict | None:
        return self._structure_definitions.get(canonical_without_version(url))

    def get_value_set(self, url: str) -> dict | None:
        return self._value_sets.get(canonical_without_version(url))

    def get_code_system(self, url: str) -> dict | None:
        return self._code_systems.get(canonical_without_version(url))

    def required_binding(self, element_path: str) -> str | None:
        """The ValueSet a base R4 element is bound to with strength required. `Age.comparator`
        is `Quantity.comparator`: the element is looked up under each type it derives from."""
        if element_path not in self._binding_of:
            found = (self._required_bindings.get(path) for path in type_ancestry(element_path))
            self._binding_of[element_path] = next((url for url in found if url), None)
        return self._binding_of[element_path]

    def profiles_for_type(self, resource_type: str) -> list[str]:
        """Profiles (constraints on a resource) whose instances are of `resource_type`."""
        return sorted(
            url
            for url, sd in self._structure_definitions.items()
            if sd.get("type") == resource_type and sd.get("kind") == "resource" and sd.get("derivation") == "constraint"
        )

    def all_canonical_urls(self) -> list[str]:
        return sorted([*self._structure_definitions, *self._value_sets, *self._code_systems])

    def element_rules(self, url: str) -> dict[str, ElementRule]:
        """Merged constraints of a profile and every ancestor this registry knows.

        Ancestors outside the registry (the base R4 resources) are covered by the R4 model check.
        """
        url = canonical_without_version(url)
        cached = self._rules.get(url)
        if cached is None:
            chain: list[list[dict]] = []
            seen: set[str] = set()
            current = self.get_structure_definition(url)
            while current is not None and current["url"] not in seen:
                seen.add(current["url"])
                chain.append(current.get("differential", {}).get("element", []))
                current = self.get_structure_definition(current.get("baseDefinition", ""))
            cached = self._rules[url] = merge_differentials(list(reversed(chain)))
        return cached
