"""token: `[system]|[code]`, `code`, `system|`, `|code`; modifiers :not, :text, :of-type."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.errors import FhirError
from fhir_server.search.fields import OF_TYPE, TEXT
from fhir_server.search.normalize.string import normalize


def token_key(value: str) -> str:
    """The stored key a search value matches (see fhir_server.search.extract for the encoding)."""
    if "|" not in value:
        return f"*|{value}"
    system, code = value.split("|", 1)
    if not system:
        return f"|{code}"
    if not code:
        return f"{system}|*"
    return f"{system}|{code}"


def _equal(field: str, keys: list[str]) -> dict[str, Any]:
    return {field: keys[0]} if len(keys) == 1 else {field: {"$in": keys}}


def condition(field: str, modifier: str | None, values: list[str]) -> dict[str, Any]:
    if modifier is None:
        return _equal(field, [token_key(v) for v in values])
    if modifier == "not":
        return {field: {"$nin": [token_key(v) for v in values]}}
    if modifier == "text":
        pattern = "|".join(re.escape(normalize(v)) for v in values)
        return {f"{field}{TEXT}": {"$elemMatch": {"$regex": f"^({pattern})"}}}
    if modifier == "of-type":
        for value in values:
            if value.count("|") != 2:
                raise FhirError(400, "invalid", f":of-type needs system|code|value, got '{value}'")
        return _equal(f"{field}{OF_TYPE}", values)
    raise FhirError(400, "not-supported", f"Modifier :{modifier} is not supported on token parameters")
