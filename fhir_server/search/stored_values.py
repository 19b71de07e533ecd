"""Index values as written to the store, and the same encoding for search values.

The embedded store treats any string that starts like a date (`2024-03-01...`, `01/03/2024`)
as a datetime: it compares it through SQLite's datetime(), which drops fractions of a second
and turns anything else after the date (`2024-03-01T10:00:00.000000Z|id`) into NULL, so the
comparison silently fails. Strings the server compares by order, or that may start with
digits, are therefore stored with a letter in front. Real MongoDB is given the same values.
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.fields import field_key
from fhir_server.search.parameters import SearchParameterRegistry
from fhir_server.search.sortkeys import sort_keys
from fhir_server.timefmt import instant

INSTANT = "t"  # date range bounds {l, h}, `ts`, history keys (see fhir_server.timefmt.instant)
EXACT_VALUE = "="  # values of :exact string matching


def exact(value: str) -> str:
    return EXACT_VALUE + value


def _date_ranges(values: Any) -> Any:
    return [{"l": instant(v["l"]), "h": instant(v["h"])} for v in values]


def encode(resource_type: str, ix: dict[str, Any], sk: dict[str, Any], resource_id: str,
           registry: SearchParameterRegistry) -> tuple[dict[str, Any], dict[str, Any]]:
    stored: dict[str, Any] = {}
    for code, values in ix.items():
        base, _, suffix = code.partition(":")
        param = registry.get(resource_type, base)
        if param is not None and param.type == "date" and not suffix:
            values = _date_ranges(values)
        elif suffix == "exact":
            values = [exact(v) for v in values]
        stored[field_key(code)] = values
    return stored, {field_key(k): v for k, v in sort_keys(sk, resource_id).items()}


