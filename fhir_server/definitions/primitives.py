"""What R4 allows in each primitive datatype's JSON value (datatypes.html, json.html).

The lexical rules are the regexes of the primitive StructureDefinitions (`profiles/r4/structure/
base.json`), read as XML Schema reads them: `\\s` is ASCII whitespace only. Two rules are
written here because a regex cannot say them or says them too slowly:
- strings hold no character below U+0020 other than tab, CR and LF (datatypes.html#string);
- base64Binary is groups of four base64 characters with whitespace allowed between groups (its
  regex `(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+` takes seconds over a 10 MB attachment; this check
  says the same in a few milliseconds).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from fhir_server.definitions.structure import primitive

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")
_BASE64_GROUPS = re.compile(r"(?:[0-9a-zA-Z+/=]{4})+")
INT32 = (-(2**31), 2**31 - 1)
# JSON representation (json.html#primitive): numbers and booleans are JSON numbers and booleans.
INTEGERS = {"integer": INT32[0], "unsignedInt": 0, "positiveInt": 1}

Check = Callable[[Any], str | None]  # None when valid, else why not


def base64_groups(text: str) -> list[str] | None:
    """The whitespace-free runs of an R4 base64Binary, or None when it is not one."""
    parts = [p for p in _WHITESPACE.split(text) if p]
    if not parts or not all(_BASE64_GROUPS.fullmatch(p) for p in parts):
        return None
    return parts


def decode_base64(text: str) -> bytes | None:
    """The bytes of an R4 base64Binary (whitespace between groups allowed), or None if not valid."""
    parts = base64_groups(text)
    if parts is None:
        return None
    try:
        return base64.b64decode("".join(parts), validate=True)
    except (binascii.Error, ValueError):
        return None


@cache
def checker(type_name: str) -> Check | None:
    """The check of a primitive type's JSON value, or None when `type_name` is not a primitive."""
    definition = primitive(type_name)
    if definition is None:
        return None
    if type_name == "boolean":
        return lambda value: None if type(value) is bool else "is not a JSON boolean"
    if type_name in INTEGERS:
        low = INTEGERS[type_name]

        def integer(value: Any) -> str | None:
            if type(value) is not int:
                return "is not a JSON integer"
            if not low <= value <= INT32[1]:
                return f"is out of the range of {type_name}"
            return None

        return integer
    if type_name == "decimal":
        return lambda value: None if type(value) in (int, float) else "is not a JSON number"
    if type_name == "base64Binary":
        return lambda value: None if isinstance(value, str) and base64_groups(value) is not None \
            else "is not base64 (groups of four characters, whitespace between groups)"
    pattern = re.compile(definition.regex, re.ASCII) if definition.regex else None

    def text(value: Any) -> str | None:
        if not isinstance(value, str):
            return "is not a JSON string"
        if _CONTROL.search(value):
            return "holds a control character (FHIR strings allow tab, CR and LF only)"
        if pattern is not None and not pattern.fullmatch(value):
            return f"is not a valid {type_name}"
        return None

    return text
