"""reference: `Type/id`, `id`, absolute URL, `:Type`, `:identifier`."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.search.fields import IDENTIFIER
from fhir_server.search.filters import token

HISTORY_SUFFIX = re.compile(r"/_history/[^/]+$")


def reference_keys(value: str, targets: list[str], type_modifier: str | None, base_url: str) -> list[str]:
    """Stored keys a search value matches.

    `Type/id` is one key: an equality, which the embedded store answers from its index (`$in`
    makes it scan), so the common search stays fast. A value naming this server by its absolute
    URL also matches references stored relatively, the usual way to write them.
    """
    value = HISTORY_SUFFIX.sub("", value)
    base = base_url.rstrip("/")
    if base and value.startswith(base + "/"):
        relative = value[len(base) + 1:]
        return [relative, value] if not type_modifier else [f"{type_modifier}/{relative.rsplit('/', 1)[-1]}"]
    if type_modifier:
        return [f"{type_modifier}/{value.rsplit('/', 1)[-1]}"]
    if "/" in value or value.startswith("urn:"):
        return [value]
    return [f"{t}/{value}" for t in targets] or [value]


def condition(
    field: str, modifier: str | None, values: list[str], targets: list[str], base_url: str
) -> dict[str, Any]:
    if modifier == "identifier":
        return token.condition(f"{field}{IDENTIFIER}", None, values)
    keys = [k for v in values for k in reference_keys(v, targets, modifier, base_url)]
    return {field: keys[0]} if len(keys) == 1 else {field: {"$in": keys}}
