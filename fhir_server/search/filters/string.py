"""string: case- and accent-insensitive starts-with by default; :exact; :contains."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.errors import FhirError
from fhir_server.search.fields import EXACT
from fhir_server.search.stored_values import exact
from fhir_server.search.normalize.string import normalize


def condition(field: str, modifier: str | None, values: list[str]) -> dict[str, Any]:
    if modifier == "exact":
        keys = [exact(v) for v in values]
        return {f"{field}{EXACT}": keys[0]} if len(keys) == 1 else {f"{field}{EXACT}": {"$in": keys}}
    alternatives = "|".join(re.escape(normalize(v)) for v in values)
    if modifier is None:
        return {field: {"$elemMatch": {"$regex": f"^({alternatives})"}}}
    if modifier == "contains":
        return {field: {"$elemMatch": {"$regex": f"({alternatives})"}}}
    raise FhirError(400, "not-supported", f"Modifier :{modifier} is not supported on string parameters")
