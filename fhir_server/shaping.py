"""_summary and _elements: which elements of a resource a client asked to see."""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
ALWAYS = {"resourceType", "id", "meta"}


@lru_cache(maxsize=None)
def summary_elements(resource_type: str) -> frozenset[str]:
    """Elements marked isSummary in the R4 definitions, read from the fhir.resources models."""
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    model = getattr(module, resource_type)
    names = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("summary_element_property"):
            names.add(info.alias or name)
    return frozenset(names)


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
