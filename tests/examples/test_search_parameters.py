"""Every R4 search parameter of each example's type is accepted under `handling=strict`, and for each
kind of parameter the type has (token, string, date, reference, quantity, number, uri, composite)
a search made from an example's own values finds exactly the stored examples it should, as worked
out by tests.examples.expectations (fhirpathpy and the rules of R4 search.html, not the server's code)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.examples.conftest import Stored
from tests.examples.expectations import (
    KINDS,
    Search,
    composite_searches,
    definitions,
    parameters_of,
    simple_searches,
)
from tests.r4_examples import ALL

STRICT = {"Prefer": "handling=strict"}
SYNTHETIC = {"date": "2020", "number": "1", "quantity": "1", "token": "x", "reference": "Patient/x", "string": "x",
             "uri": "http://x", "special": "45.0|5.0|10|km"}


@pytest.fixture(scope="module")
def by_url() -> dict[str, dict[str, Any]]:
    return definitions()


def _searches(definition: dict[str, Any], resource_type: str, outcomes: list[Stored],
              by_url: dict[str, dict[str, Any]]) -> list[Search]:
    out: list[Search] = []
    for outcome in outcomes:
        resource = {**outcome.sent, "id": outcome.id}
        if definition["type"] == "composite":
            out += composite_searches(definition, resource_type, resource, by_url)
        elif definition["type"] in KINDS:
            out += simple_searches(definition["type"], definition, resource_type, resource)
    return out


def _synthetic(definition: dict[str, Any], by_url: dict[str, dict[str, Any]]) -> str:
    if definition["type"] == "composite":
        return "$".join(SYNTHETIC[by_url[c["definition"]]["type"]] for c in definition["component"])
    return SYNTHETIC[definition["type"]]


def _found(fhir: httpx.Client, resource_type: str, code: str, value: str) -> set[str]:
    ids: set[str] = set()
    response = fhir.get(f"/{resource_type}", params={code: value, "_count": "1000", "_elements": "id"}, headers=STRICT)
    while True:
        assert response.status_code == 200, (code, value, response.text[:300])
        bundle = response.json()
        ids |= {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            return ids
        response = fhir.get(following[0], headers=STRICT)


def test_every_parameter_is_accepted_strictly(fhir: httpx.Client, stored_types: dict[str, list[Stored]],
                                              by_url: dict[str, dict[str, Any]], example_type: str) -> None:
    if example_type == "AuditEvent":
        pytest.skip("AuditEvent is served from the audit store with its own parameters (issue 13, tests/audit)")
    outcomes = [o for o in stored_types[example_type] if o.status in (200, 201)]
    refused = []
    for definition in parameters_of(example_type, by_url):
        if definition.get("experimental") or "expression" not in definition:
            continue  # `_text`, `_content`, `_query`: a clear 400 (tests/api/test_capabilities.py)
        searches = _searches(definition, example_type, outcomes[:1], by_url)
        value = searches[0].value if searches else _synthetic(definition, by_url)
        response = fhir.get(f"/{example_type}", params={definition["code"]: value, "_count": "1"}, headers=STRICT)
        if response.status_code != 200:
            refused.append((definition["code"], value, response.text[:200]))
    assert refused == []


def test_each_kind_finds_the_right_examples(fhir: httpx.Client, stored_types: dict[str, list[Stored]],
                                            by_url: dict[str, dict[str, Any]], example_type: str) -> None:
    if example_type == "AuditEvent":
        pytest.skip("AuditEvent is served from the audit store with its own parameters (issue 13, tests/audit)")
    outcomes = [o for o in stored_types[example_type] if o.status in (200, 201)]
    examples = {str(o.id): {**o.sent, "id": o.id} for o in outcomes}
    checked: dict[str, int] = {}
    wrong = []
    for definition in sorted(parameters_of(example_type, by_url), key=lambda d: d["code"]):
        kind = definition["type"]
        if kind not in KINDS or "expression" not in definition or (checked.get(kind) and not ALL):
            continue
        searches = _searches(definition, example_type, outcomes, by_url)
        for search in searches[:1] if not ALL else searches[:3]:
            expected = {rid for rid, resource in examples.items() if search.finds(resource)}
            found = _found(fhir, example_type, search.code, search.value) & set(examples)
            if found != expected:
                wrong.append((search.code, search.value, sorted(found ^ expected)))
            checked[kind] = checked.get(kind, 0) + 1
    assert wrong == []
    # Each kind the type's examples give a value for was checked at least once.
    kinds = {d["type"] for d in parameters_of(example_type, by_url) if "expression" in d} & set(KINDS)
    unchecked = kinds - set(checked)
    for kind in unchecked:
        assert not any(_searches(d, example_type, outcomes, by_url) for d in parameters_of(example_type, by_url)
                       if d["type"] == kind and "expression" in d), kind
