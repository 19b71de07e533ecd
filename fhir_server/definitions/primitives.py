"""What R4 allows in each primitive datatype's JSON value (datatypes.html, json.html).

The lexical rules are the regexes of the primitive StructureDefinitions (`profiles/r4/structure/
base.json`), read as XML Schema reads them: `\\s` is ASCII whitespace only. Two rules are
written here because a regex cannot say them or says them too slowly:
- strings hold no character below U+0020 other than tab, CR and LF (datatypes.html#string);
- base64Binary is groups of four base64 characters with whitespace allowed between groups (its
  regex `(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+` takes seconds over a 10 MB attachment; this check
  says the same with bytes operations that run in C: 0.1 ms for 100 KB of attachment, where a
  regex over its groups took 2.5, twice per document on the ingest paths, issue 18).
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
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
# XML Schema's whitespace (`\s`), which bytes.split() splits on.
_ASCII_WHITESPACE = b" \t\r\n\f\v"
INT32 = (-(2**31), 2**31 - 1)
# JSON representation (json.html#primitive): numbers and booleans are JSON numbers and booleans.
INTEGERS = {"integer": INT32[0], "unsignedInt": 0, "positiveInt": 1}

Check = Callable[[Any], str | None]  # None when valid, else why not


def _base64_runs(text: str) -> list[bytes] | None:
    """The whitespace-free runs of an R4 base64Binary, each whole groups of four, or None when it is not one."""
    if not text.isascii():
        return None
    raw = text.encode("ascii")
    if raw.translate(None, _BASE64_ALPHABET + _ASCII_WHITESPACE):
        return None  # a character that is neither base64 nor whitespace
    parts = raw.split() if raw.translate(None, _BASE64_ALPHABET) else ([raw] if raw else [])
    if not parts or any(len(p) % 4 for p in parts):
        return None
    return parts


def decode_base64(text: str) -> bytes | None:
    """The bytes of an R4 base64Binary (whitespace between groups allowed), or None if not valid."""
    parts = _base64_runs(text)
    if parts is None:
        return None
    try:
        return base64.b64decode(b"".join(parts), validate=True)
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
        return lambda value: None if isinstance(value, str) and _base64_runs(value) is not None \
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
