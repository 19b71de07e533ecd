"""The official R4 examples of the served types are accepted unchanged and read back equal."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "validation" / "examples").glob("*.json"))
SERVER_META = ("versionId", "lastUpdated")


def _without_server_meta(resource: dict) -> dict:
    out = dict(resource)
    meta = {k: v for k, v in (out.pop("meta", None) or {}).items() if k not in SERVER_META}
    if meta:
        out["meta"] = meta
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_accepted_unchanged(fhir: httpx.Client, path: Path) -> None:
    example = json.loads(path.read_text())
    rid = example.get("id", path.stem)
    response = fhir.put(f"/{example['resourceType']}/{rid}", json=example | {"id": rid})
    assert response.status_code in (200, 201), response.text
    stored = fhir.get(f"/{example['resourceType']}/{rid}", headers={"Accept": "application/fhir+json"}).json()
    assert _without_server_meta(stored) == _without_server_meta(example | {"id": rid})


def test_there_are_examples_of_every_required_type() -> None:
    types = {json.loads(p.read_text())["resourceType"] for p in EXAMPLES}
    from tests.api.test_capabilities import REQUIRED_TYPES

    assert REQUIRED_TYPES <= types
