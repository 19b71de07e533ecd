"""The search parameters the server supports, read from SearchParameter resources.

Two sources: every R4 search parameter (`profiles/r4/search-parameters.json`, the specification's
own definitions) and the implementation guides' (`profiles/SearchParameter/*.json`, one Bundle per
guide). Reading them is cheap; a type's parameters are compiled (their FHIRPath expressions against
the type's R4 structure) the first time that type is searched or indexed. A SearchParameter with
several bases is registered for each, with the branches of its expression that apply to that base.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fhir_server.definitions.files import R4_DIR, read_json
from fhir_server.search.fhirpath_walker import (
    Evaluator,
    ItemEvaluator,
    compile_expression,
    expression_for_base,
)

COMMON_BASE = "Resource"
# DomainResource parameters (`_text`) apply to every type but Bundle, Binary and Parameters.
DOMAIN_BASE = "DomainResource"
NOT_DOMAIN_RESOURCES = frozenset({"Bundle", "Binary", "Parameters"})


@dataclass(frozen=True)
class Component:
    """One part of a composite parameter: its own type, and its expression from the composite's values."""

    type: str
    url: str
    targets: tuple[str, ...]
    evaluate: ItemEvaluator = field(repr=False, compare=False)


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
    components: tuple[Component, ...] = ()

    @property
    def searchable(self) -> bool:
        """False for the parameters R4 defines without an expression (`_text`, `_content`, `_query`)."""
        return bool(self.expression)


def parameter_files(profiles_dir: Path) -> list[Path]:
    """The R4 definitions, then the implementation guides' parameters (one Bundle per guide)."""
    return [R4_DIR / "search-parameters.json", *sorted((profiles_dir / "SearchParameter").glob("*.json"))]


class SearchParameterRegistry:
    def __init__(self, definitions: list[dict]) -> None:
        self._definitions = definitions
        self._by_base: dict[str, dict[str, dict]] = {}
        self._by_url: dict[str, dict] = {}
        for definition in definitions:
            self._by_url.setdefault(definition["url"], definition)
            for base in definition.get("base", ()):
                codes = self._by_base.setdefault(base, {})
                if definition["code"] in codes:
                    raise ValueError(f"search parameter {base}.{definition['code']} is defined twice")
                codes[definition["code"]] = definition
        self._compiled: dict[str, dict[str, SearchParam]] = {}
        self._for_type: dict[str, list[SearchParam]] = {}

    @classmethod
    def load(cls, files: Iterable[Path]) -> SearchParameterRegistry:
        """Every SearchParameter of the given Bundle files (`.json`, or `.json.gz` beside a missing `.json`)."""
        definitions: list[dict] = []
        for path in files:
            bundle = read_json(path)
            definitions += [entry["resource"] for entry in bundle.get("entry", ())]
        return cls(definitions)

    def _bases(self, resource_type: str) -> list[str]:
        bases = [resource_type] if resource_type not in (COMMON_BASE, DOMAIN_BASE) else []
        if resource_type not in NOT_DOMAIN_RESOURCES and resource_type != COMMON_BASE:
            bases.append(DOMAIN_BASE)
        return [*bases, COMMON_BASE]

    def definitions_for(self, resource_type: str) -> list[dict]:
        """The SearchParameter resources that apply to a type, its own first, without compiling them."""
        found: dict[str, dict] = {}
        for base in self._bases(resource_type):
            for code, definition in self._by_base.get(base, {}).items():
                found.setdefault(code, definition)
        return list(found.values())

    def _compile(self, resource_type: str) -> dict[str, SearchParam]:
        compiled = self._compiled.get(resource_type)
        if compiled is None:
            compiled = {}
            for base in self._bases(resource_type):
                for code, definition in self._by_base.get(base, {}).items():
                    if code not in compiled:
                        compiled[code] = self._param(definition, base, resource_type)
            self._compiled[resource_type] = compiled
        return compiled

    def _param(self, definition: dict, base: str, resource_type: str) -> SearchParam:
        # A common parameter (`_profile`: `Resource.meta.profile`) is compiled for the type it serves.
        expression = expression_for_base(definition.get("expression", ""), base)
        compiled = compile_expression(expression, resource_type) if expression else None
        components: list[Component] = []
        for part in definition.get("component", ()):
            inner = self._by_url.get(part["definition"])
            if inner is None:
                raise ValueError(f"{definition['url']}: component {part['definition']} is not a known SearchParameter")
            assert compiled is not None
            components.append(Component(inner["type"], inner["url"], tuple(inner.get("target", ())),
                                        compiled.component(part["expression"])))
        return SearchParam(
            code=definition["code"],
            type=definition["type"],
            url=definition["url"],
            base=base,
            expression=expression,
            targets=tuple(definition.get("target", ())),
            evaluate=compiled.evaluate if compiled else _nothing,
            single=compiled.single if compiled else True,
            definition=definition,
            components=tuple(components),
        )

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self._compile(resource_type).get(code)

    def for_type(self, resource_type: str) -> list[SearchParam]:
        """The parameters of a resource type, its own then the common ones."""
        params = self._for_type.get(resource_type)
        if params is None:
            params = self._for_type[resource_type] = list(self._compile(resource_type).values())
        return params

    def includes(self, resource_type: str) -> list[str]:
        """`_include` values of a type: `Type:code` for each of its reference parameters."""
        return sorted(f"{resource_type}:{d['code']}" for d in self.definitions_for(resource_type)
                      if d["type"] == "reference" and d.get("expression"))

    def revincludes(self, resource_types: Iterable[str]) -> dict[str, list[str]]:
        """`_revinclude` values per target type: `Source:code` for each reference parameter that may
        point to it (one without targets, `Reference(Any)`, may point to every type)."""
        types = sorted(resource_types)
        found: dict[str, set[str]] = {t: set() for t in types}
        for source in types:
            for definition in self.definitions_for(source):
                if definition["type"] != "reference" or not definition.get("expression"):
                    continue
                value = f"{source}:{definition['code']}"
                for target in definition.get("target") or types:
                    if target in found:
                        found[target].add(value)
        return {t: sorted(values) for t, values in found.items()}

    def all_resources(self) -> list[dict]:
        """One SearchParameter per url, for the CapabilityStatement (copies: callers may alter them)."""
        return [copy.deepcopy(definition) for definition in self._by_url.values()]


def _nothing(resource: dict) -> list:
    return []
