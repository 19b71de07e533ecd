"""uri: exact match; :below (the value is a prefix) and :above (the stored uri is a prefix)."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.errors import FhirError


def _prefixes(uri: str) -> list[str]:
    parts = uri.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1) if parts[i - 1] or i == len(parts)]


def condition(field: str, modifier: str | None, values: list[str]) -> dict[str, Any]:
    if modifier is None:
        return {field: values[0]} if len(values) == 1 else {field: {"$in": values}}
    if modifier == "below":
        pattern = "|".join(re.escape(v) for v in values)
        return {field: {"$elemMatch": {"$regex": f"^({pattern})"}}}
    if modifier == "above":
        return {field: {"$in": [p for v in values for p in _prefixes(v)]}}
    if modifier == "not":
        return {field: {"$nin": values}}
    raise FhirError(400, "not-supported", f"Modifier :{modifier} is not supported on uri parameters")
