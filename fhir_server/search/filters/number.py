"""number and quantity, with prefixes; an `eq` value's precision gives its range (100 is 99.5..100.5)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_server.errors import FhirError
from fhir_server.search.filters.prefixes import split_prefix


def _parse(text: str) -> tuple[float, float, float]:
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise FhirError(400, "invalid", f"'{text}' is not a number") from exc
    exponent = number.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    return float(number), float(number - half), float(number + half)


def value_conditions(prefix: str, text: str) -> list[dict[str, Any]]:
    value, lo, hi = _parse(text)
    match prefix:
        case "eq":
            return [{"$gte": lo, "$lt": hi}]
        case "ne":
            return [{"$lt": lo}, {"$gte": hi}]
        case "gt" | "sa":
            return [{"$gt": value}]
        case "lt" | "eb":
            return [{"$lt": value}]
        case "ge":
            return [{"$gte": value}]
        case "le":
            return [{"$lte": value}]
        case "ap":
            margin = abs(value) * 0.1
            return [{"$gte": value - margin, "$lte": value + margin}]
    raise AssertionError(prefix)


def condition(field: str, values: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in values:
        prefix, text = split_prefix(raw)
        out += [{field: {"$elemMatch": c}} for c in value_conditions(prefix, text)]
    return out


def quantity_condition(field: str, values: list[str]) -> list[dict[str, Any]]:
    """`[prefix]number|system|code`; `number||code` matches the code or the unit."""
    out: list[dict[str, Any]] = []
    for raw in values:
        parts = raw.split("|")
        if len(parts) not in (1, 3):
            raise FhirError(400, "invalid", f"'{raw}' is not [prefix]number|system|code")
        prefix, text = split_prefix(parts[0])
        for numeric in value_conditions(prefix, text):
            match: dict[str, Any] = {"v": numeric}
            if len(parts) == 1 or not parts[2]:
                if len(parts) == 3 and parts[1]:
                    match["s"] = parts[1]
                out.append({field: {"$elemMatch": match}})
            elif parts[1]:
                out.append({field: {"$elemMatch": {**match, "s": parts[1], "c": parts[2]}}})
            else:
                out.append({field: {"$elemMatch": {**match, "c": parts[2]}}})
                out.append({field: {"$elemMatch": {**match, "u": parts[2]}}})
    return out
