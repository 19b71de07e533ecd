"""The search parameters the server supports, read at start-up from SearchParameter resources.

`profiles/SearchParameter/<Type>.json` holds one Bundle per resource type (`Resource.json`: the
parameters common to all types). A SearchParameter with several bases is registered for each, with
the branches of its expression that apply to that base.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from fhir_server.search.fhirpath_walker import Evaluator, compile_expression, expression_for_base

COMMON_BASE = "Resource"


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str
    url: str
    base: str
    expression: str  # the part of the definition's expression that applies to `base`
    targets: tuple[str, ...]
    evaluate: Evaluator = field(repr=False, compare=False)
    single: bool  # the expression yields at most one value for `base`
    definition: dict = field(repr=False, compare=False)  # the SearchParameter resource (modifiers, chains...)


class SearchParameterRegistry:
    def __init__(self, params: list[SearchParam], definitions: list[dict]) -> None:
        self._by_type: dict[str, dict[str, SearchParam]] = {}
        for param in params:
            codes = self._by_type.setdefault(param.base, {})
            if param.code in codes:
                raise ValueError(f"search parameter {param.base}.{param.code} is defined twice")
            codes[param.code] = param
        self._common = list(self._by_type.get(COMMON_BASE, {}).values())
        self._definitions = definitions
        self._for_type: dict[str, list[SearchParam]] = {}

    @classmethod
    def load(cls, directory: Path) -> SearchParameterRegistry:
        params: list[SearchParam] = []
        definitions: list[dict] = []
        for path in sorted(Path(directory).glob("*.json")):
            bundle = json.loads(path.read_text(encoding="utf-8"))
            for entry in bundle.get("entry", ()):
                definition = entry["resource"]
                definitions.append(definition)
                params.extend(_params_of(definition))
        return cls(params, definitions)

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        found = self._by_type.get(resource_type, {}).get(code)
        if found is None:
            found = self._by_type.get(COMMON_BASE, {}).get(code)
        return found

    def for_type(self, resource_type: str) -> list[SearchParam]:
        """The parameters of a resource type, its own then the common ones."""
        params = self._for_type.get(resource_type)
        if params is None:
            own = self._by_type.get(resource_type, {}) if resource_type != COMMON_BASE else {}
            params = list(own.values()) + [p for p in self._common if p.code not in own]
            self._for_type[resource_type] = params
        return params

    def all_resources(self) -> list[dict]:
        """One SearchParameter per url, for the CapabilityStatement.

        A standard parameter shared by several types (`individual-family` on Patient and
        Practitioner) is stored once per type file; it is given back whole: all its bases, the
        union of its expressions.
        """
        merged: dict[str, dict] = {}
        for definition in self._definitions:
            url = definition["url"]
            if url not in merged:
                merged[url] = copy.deepcopy(definition)
                continue
            known = merged[url]
            for base in definition.get("base", ()):
                if base not in known["base"]:
                    known["base"].append(base)
                    known["expression"] = f"{known['expression']} | {definition['expression']}"
            for target in definition.get("target", ()):
                known.setdefault("target", [])
                if target not in known["target"]:
                    known["target"].append(target)
        return list(merged.values())


def _params_of(definition: dict) -> list[SearchParam]:
    found = []
    for base in definition.get("base", ()):
        expression = expression_for_base(definition.get("expression", ""), base)
        if not expression:
            continue
        compiled = compile_expression(expression, base)
        found.append(
            SearchParam(
                code=definition["code"],
                type=definition["type"],
                url=definition["url"],
                base=base,
                expression=expression,
                targets=tuple(definition.get("target", ())),
                evaluate=compiled.evaluate,
                single=compiled.single,
                definition=definition,
            )
        )
    return found
