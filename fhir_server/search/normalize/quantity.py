"""Quantity search values: value with system, code and unit (FHIR R4 search.html#quantity)."""

from __future__ import annotations

from typing import Any, Iterable

from fhir_server.search.normalize.number import to_float


def encode(code: str, items: Iterable[tuple[str | None, Any]], ix: dict, sk: dict) -> None:
    values: list[dict] = []
    for _, value in items:
        # Quantity and its profiles (Age, Duration, Distance, Count, SimpleQuantity) share this shape;
        # SampledData and Range carry no single value and are skipped.
        if not isinstance(value, dict):
            continue
        number = to_float(value.get("value"))
        if number is None:
            continue
        entry = {"v": number, "s": value.get("system"), "c": value.get("code"), "u": value.get("unit")}
        if entry not in values:
            values.append(entry)
    if values:
        ix[code] = values
        sk[code] = min(entry["v"] for entry in values)
