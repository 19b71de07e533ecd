"""Number search values (FHIR R4 search.html#number)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable


def to_float(value: Any) -> float | None:
    # bool is an int subclass, and a boolean is never a number.
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def encode(code: str, items: Iterable[tuple[str | None, Any]], ix: dict, sk: dict) -> None:
    values: list[float] = []
    for _, value in items:
        number = to_float(value)
        if number is not None and number not in values:
            values.append(number)
    if values:
        ix[code] = values
        sk[code] = min(values)
