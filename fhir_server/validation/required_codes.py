"""Codes bound to a required ValueSet in the base R4 definitions (Patient.gender, *.status...).

The R4B models know these value lists (`enum_values`) but do not enforce them; a list ending in
"+" is incomplete in the models and is not enforced here either.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from fhir_server.validation.issues import ValidationIssue


@lru_cache(maxsize=None)
def _fields(model: type[BaseModel]) -> dict[str, tuple[str, frozenset[str] | None]]:
    """name -> (FHIR name, the allowed codes when the element has a complete required binding)."""
    out: dict[str, tuple[str, frozenset[str] | None]] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        values = extra.get("enum_values")
        out[name] = (info.alias or name, frozenset(values) if values and "+" not in values else None)
    return out


def check_required_codes(instance: BaseModel, path: str) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    fields = _fields(type(instance))
    # Only the elements present: most of a resource's possible elements are absent.
    for name in instance.model_fields_set:
        alias, allowed = fields.get(name, (name, None))
        value: Any = getattr(instance, name, None)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            where = f"{path}.{alias}" + (f"[{index}]" if isinstance(value, list) else "")
            if isinstance(item, BaseModel):
                issues += check_required_codes(item, where)
            elif allowed is not None and item is not None and item not in allowed:
                issues.append(ValidationIssue("error", "code-invalid", [where],
                                              f"'{item}' is not one of the codes allowed for {alias}: {', '.join(sorted(allowed))}"))
    return issues
