"""Characters FHIR strings may not hold: R4 datatypes.html#string says strings SHALL NOT contain
Unicode code points below U+0020 except tab, carriage return and line feed. Every JSON string of a
resource is a primitive of a string-like type (string, code, uri, markdown, xhtml, dates...), and
none of them allows more, so every string is checked, known element or not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from fhir_server.validation.issues import ValidationIssue

_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# orjson writes these characters as \u00XX, \b or \f: without any of them in the encoded resource,
# no string holds one and the walk is skipped.
_ENCODED_HINTS = (b"\\u00", b"\\b", b"\\f")


def check_characters(resource: dict[str, Any], expression: str) -> list[ValidationIssue]:
    encoded = orjson.dumps(resource)
    if not any(hint in encoded for hint in _ENCODED_HINTS):
        return []
    return [
        ValidationIssue("error", "value", [where],
                        "A FHIR string may not hold control characters (below U+0020 other than tab, CR and LF)")
        for where in _offending(resource, expression)
    ]


def _offending(value: Any, expression: str) -> Iterator[str]:
    if isinstance(value, str):
        if _FORBIDDEN.search(value):
            yield expression
    elif isinstance(value, dict):
        for key, item in value.items():
            # `_given` holds the extensions of `given`: FHIRPath names both `given`.
            yield from _offending(item, f"{expression}.{key.removeprefix('_')}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _offending(item, f"{expression}[{index}]")
