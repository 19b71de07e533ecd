"""Profiles a resource is held to because of its code (`profiles/code-profiles.json`).

FHIR R4 makes the vital-signs profiles mandatory for any Observation carrying one of their LOINC
codes, claimed or not: a body weight in metres must be refused even when the sender names no
profile. The rules are data; this module only matches a resource's codings against them. The
element is a CodeableConcept (`code`, `type`) or a list of them (`securityLabel`). A rule with
`waivedBy` names the server setting that lifts it (fhir_server.config.Settings.waivers).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True)
class CodeProfiles:
    # (resourceType, element, system, code) -> profile canonical URLs
    by_code: dict[tuple[str, str, str, str], tuple[str, ...]]

    @classmethod
    def load(cls, path: Path, waived: Collection[str] = ()) -> CodeProfiles:
        """The rules of `path`, but those whose `waivedBy` setting is in `waived`."""
        if not path.is_file():
            return cls({})
        by_code: dict[tuple[str, str, str, str], tuple[str, ...]] = {}
        for rule in orjson.loads(path.read_bytes())["rules"]:
            if rule.get("waivedBy") in waived:
                continue
            key = (rule["resourceType"], rule["element"], rule["system"], rule["code"])
            by_code[key] = (*by_code.get(key, ()), rule["profile"])
        return cls(by_code)

    def for_resource(self, resource: dict[str, Any]) -> list[str]:
        """The profiles `resource` must meet because of the codes it carries, in rule order."""
        resource_type = resource.get("resourceType")
        found: list[str] = []
        for (rule_type, element, system, code), profiles in self.by_code.items():
            if rule_type != resource_type:
                continue
            value = resource.get(element)
            concepts = value if isinstance(value, list) else [value]
            codings = [c for concept in concepts if isinstance(concept, dict) and isinstance(concept.get("coding"), list)
                       for c in concept["coding"]]
            if any(isinstance(c, dict) and c.get("system") == system and c.get("code") == code for c in codings):
                found.extend(p for p in profiles if p not in found)
        return found
