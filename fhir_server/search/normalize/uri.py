"""Uri search values, matched as exact strings (FHIR R4 search.html#uri)."""

from __future__ import annotations

from typing import Any, Iterable


def encode(code: str, items: Iterable[tuple[str | None, Any]], ix: dict, sk: dict) -> None:
    values: list[str] = []
    for fhir_type, value in items:
        if not isinstance(value, str):
            continue
        # A canonical (`meta.profile`) is searchable by its bare url as well as by `url|version`.
        forms = (value.split("|", 1)[0], value) if fhir_type == "canonical" else (value,)
        for form in forms:
            if form not in values:
                values.append(form)
    if values:
        ix[code] = values
        sk[code] = values[0]
