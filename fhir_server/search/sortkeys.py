"""Sort keys as stored: one string per parameter, ending with the resource id.

Strings compare the same way in MongoDB and in the embedded store, and the id suffix makes every
key unique, so a page boundary is a single range (`$gt` the last key) instead of an `$or`.
"""

from __future__ import annotations

import struct
from typing import Any

SEPARATOR = "\x01"  # below every character a normalised value contains


def encode_number(value: float) -> str:
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    # IEEE 754 doubles order like integers once negatives are inverted and positives get the sign bit.
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"


def encode(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return encode_number(float(value))
    return str(value).replace(SEPARATOR, "")


def sort_keys(raw: dict[str, Any], resource_id: str) -> dict[str, str]:
    # The leading letter keeps the embedded store from reading a date-like key as a datetime.
    return {code: f"k{encode(value)}{SEPARATOR}{resource_id}" for code, value in raw.items() if value is not None}
