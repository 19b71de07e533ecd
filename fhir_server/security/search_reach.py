"""Which other types a search reads besides its own: what `_include`, `_revinclude`, `_has` and
chained parameters bring back or test. Each one is authorised like a search of its own, so a
scope on one type does not reveal another through a search of the first."""

from __future__ import annotations

from fhir_server.search.parameters import SearchParameterRegistry


def _targets(registry: SearchParameterRegistry, resource_type: str, code: str, named: str | None) -> list[str]:
    if named:
        return [named]
    param = registry.get(resource_type, code)
    return list(param.targets) if param is not None else []


def reached_types(resource_type: str, params: list[tuple[str, str]], registry: SearchParameterRegistry) -> set[str]:
    """The types other than `resource_type` whose resources the search returns or tests."""
    reached: set[str] = set()
    for name, value in params:
        if name.startswith("_include"):
            parts = value.split(":")
            if len(parts) >= 2 and parts[1] != "*":
                reached.update(_targets(registry, parts[0], parts[1], parts[2] if len(parts) > 2 else None))
            elif parts[0]:
                reached.add("*")
        elif name.startswith("_revinclude"):
            reached.add(value.split(":", 1)[0] or "*")
        elif name.startswith("_has:"):
            # _has:Type:reference:param (nested: the first type is what this search tests)
            parts = name.split(":")
            if len(parts) > 1:
                reached.add(parts[1])
        elif "." in name and not name.startswith("_"):
            link = name.split(".", 1)[0]
            code, _, named = link.partition(":")
            reached.update(_targets(registry, resource_type, code, named or None))
    reached.discard(resource_type)
    return reached
