"""_summary and _elements: which elements of a resource a client asked to see."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhir_server.definitions.structure import node

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
ALWAYS = {"resourceType", "id", "meta"}


@lru_cache(maxsize=None)
def summary_elements(resource_type: str) -> frozenset[str]:
    """JSON keys of the elements marked isSummary in the R4 definition of the type."""
    found = node(resource_type)
    if found is None:
        return frozenset()
    return frozenset(key for key, (element, _) in found.keys.items() if element.summary)


def _subsetted(resource: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k in keep or k in ALWAYS}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    out["meta"] = meta
    return out


def shape(resource: dict[str, Any], summary: str | None, elements: list[str]) -> dict[str, Any]:
    if summary == "true":
        return _subsetted(resource, set(summary_elements(resource["resourceType"])))
    if summary == "text":
        return _subsetted(resource, {"text"})
    if summary == "data":
        return _subsetted(resource, set(resource) - {"text"})
    if elements:
        wanted = {e.split(".", 1)[-1] if e.startswith(resource["resourceType"] + ".") else e for e in elements}
        return _subsetted(resource, wanted)
    return resource
