"""reference: `Type/id`, `id`, absolute URL, `:Type`, `:identifier`."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.search.fields import IDENTIFIER
from fhir_server.search.filters import token

HISTORY_SUFFIX = re.compile(r"/_history/[^/]+$")
RELATIVE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def _local_keys(value: str, targets: list[str], type_modifier: str | None, base: str) -> list[str]:
    value = HISTORY_SUFFIX.sub("", value)
    if base and value.startswith(base + "/"):
        value = value[len(base) + 1:]
    if type_modifier:
        return [f"{type_modifier}/{value.rsplit('/', 1)[-1]}"]
    if "/" in value or value.startswith("urn:"):
        return [value]
    return [f"{t}/{value}" for t in targets] or [value]


def reference_keys(value: str, targets: list[str], type_modifier: str | None, base_url: str) -> list[str]:
    """Stored keys a search value matches: a resource of this server may be referenced relatively or
    by its absolute URL (index values are extracted without knowing the base URL clients use)."""
    base = base_url.rstrip("/")
    keys = _local_keys(value, targets, type_modifier, base)
    if base:
        keys += [f"{base}/{k}" for k in keys if RELATIVE.fullmatch(k)]
    return keys


def condition(
    field: str, modifier: str | None, values: list[str], targets: list[str], base_url: str
) -> dict[str, Any]:
    if modifier == "identifier":
        return token.condition(f"{field}{IDENTIFIER}", None, values)
    keys = [k for v in values for k in reference_keys(v, targets, modifier, base_url)]
    return {field: keys[0]} if len(keys) == 1 else {field: {"$in": keys}}
