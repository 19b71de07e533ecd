"""Access to the declarative data under `mappings/hl7v2/`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import orjson

MAPPINGS_DIR = Path(__file__).resolve().parents[3] / "mappings" / "hl7v2"


@cache
def load_json(relative: str) -> dict:
    """A JSON file of the HL7 v2 mappings, parsed once per process (treat the result as read-only)."""
    return orjson.loads((MAPPINGS_DIR / relative).read_bytes())
