"""Where the R4 definitions live (`profiles/r4/`, see its README) and how a file of them is read."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from fhir_server.config import PROJECT_ROOT

R4_DIR = PROJECT_ROOT / "profiles" / "r4"


def read_json(path: Path) -> Any:
    """A JSON file, or its gzip-compressed twin `<name>.gz` when only that one is there."""
    if path.exists():
        return orjson.loads(path.read_bytes())
    return orjson.loads(gzip.decompress(path.with_name(path.name + ".gz").read_bytes()))
