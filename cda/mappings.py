"""Access to the JSON mapping tables of mappings/cda/ (loaded once, read-only)."""

import json
from functools import cache
from pathlib import Path
from typing import Any

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings" / "cda"


@cache
def table(name: str) -> dict[str, Any]:
    """The mapping file `<name>.json`, without its documentation keys (those starting with `_`)."""
    with (MAPPINGS_DIR / f"{name}.json").open(encoding="utf-8") as handle:
        data = json.load(handle)
    return {key: value for key, value in data.items() if not key.startswith("_")}
