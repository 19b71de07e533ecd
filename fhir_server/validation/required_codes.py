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
def _bound_fields(model: type[BaseModel]) -> tuple[tuple[str, str, frozenset[str]], ...]:
    bound = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        values = extra.get("enum_values")
        if values and "+" not in values:
            bound.append((name, info.alias or name, frozenset(values)))
    return tuple(bound)


def check_required_codes(instance: BaseModel, path: str) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    for name, alias, allowed in _bound_fields(type(instance)):
        value = getattr(instance, name, None)
        for index, code in enumerate(value if isinstance(value, list) else [value]):
            if code is not None and code not in allowed:
                where = f"{path}.{alias}" + (f"[{index}]" if isinstance(value, list) else "")
                issues.append(ValidationIssue("error", "code-invalid", [where],
                                              f"'{code}' is not one of the codes allowed for {alias}: {', '.join(sorted(allowed))}"))
    for name, info in type(instance).model_fields.items():
        child: Any = getattr(instance, name, None)
        if isinstance(child, BaseModel):
            issues += check_required_codes(child, f"{path}.{info.alias or name}")
        elif isinstance(child, list):
            for index, item in enumerate(child):
                if isinstance(item, BaseModel):
                    issues += check_required_codes(item, f"{path}.{info.alias or name}[{index}]")
    return issues
