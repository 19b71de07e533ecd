"""reference: `Type/id`, `id`, absolute URL, `:Type`, `:identifier`."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.search.fields import IDENTIFIER
from fhir_server.search.filters import token

HISTORY_SUFFIX = re.compile(r"/_history/[^/]+$")


def reference_keys(value: str, targets: list[str], type_modifier: str | None, base_url: str) -> list[str]:
    value = HISTORY_SUFFIX.sub("", value)
    if base_url and value.startswith(base_url.rstrip("/") + "/"):
        value = value[len(base_url.rstrip("/")) + 1:]
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
