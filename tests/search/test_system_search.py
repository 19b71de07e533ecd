"""Searches at system level: GET /fhir?_type=... with the common parameters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.search.conftest import STRICT, Store, link

WORKFLOW = "http://example.org/workflow"


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    flagged = {"tag": [{"system": WORKFLOW, "code": "flagged"}]}
    return {
        "patient": store.create({"resourceType": "Patient", "meta": flagged, "gender": "female"}),
        "patient2": store.create({"resourceType": "Patient", "gender": "male"}),
        "doctor": store.create({"resourceType": "Practitioner", "meta": flagged, "gender": "female"}),
        "org": store.create({"resourceType": "Organization", "meta": flagged, "name": "Cabinet"}),
    }


def keys(bundle: dict[str, Any]) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", ())
            if e["search"]["mode"] == "match"}


def test_several_types(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("", {"_type": "Patient,Practitioner"})
    assert keys(bundle) == {f"Patient/{data['patient']}", f"Patient/{data['patient2']}", f"Practitioner/{data['doctor']}"}
    assert bundle["total"] == 3
    assert "_type=Patient%2CPractitioner" in (link(bundle, "self") or "")


def test_common_parameter_across_types(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("", {"_type": "Patient,Practitioner,Organization", "_tag": f"{WORKFLOW}|flagged"})
    assert keys(bundle) == {f"Patient/{data['patient']}", f"Practitioner/{data['doctor']}", f"Organization/{data['org']}"}
    assert keys(store.bundle("", {"_type": "Patient,Organization", "_id": data["org"]})) == {f"Organization/{data['org']}"}
    assert keys(store.bundle("", {"_type": "Patient,Organization", "_tag": f"{WORKFLOW}|other"})) == set()


def test_parameter_shared_by_the_types(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("", {"_type": "Patient,Practitioner", "gender": "female"})
    assert keys(bundle) == {f"Patient/{data['patient']}", f"Practitioner/{data['doctor']}"}


def test_summary_count(store: Store, data: dict[str, str]) -> None:
    assert store.bundle("", {"_type": "Patient,Practitioner,Organization", "_summary": "count"})["total"] == 4


def test_type_is_required_and_must_be_known(store: Store, data: dict[str, str]) -> None:
    assert store.get("").status_code == 400
    assert store.get("", {"_type": "Patient,Spaceship"}).status_code in (400, 404)
    assert store.get("", {"_type": "Patient", "nosuch": "1"}, headers=STRICT).status_code == 400


def test_paging_across_types_sees_every_match(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("", {"_type": "Patient,Practitioner,Organization", "_count": "2"})
    seen = keys(bundle)
    next_url = link(bundle, "next")
    while next_url:
        page = store.fhir.get(next_url).json()
        seen |= keys(page)
        next_url = link(page, "next")
    assert len(seen) == 4


def test_parameter_missing_on_one_type_does_not_match_all_of_it(store: Store, data: dict[str, str]) -> None:
    bundle = store.get("", {"_type": "Patient,Organization", "gender": "female"})
    assert bundle.status_code == 400 or keys(bundle.json()) == {f"Patient/{data['patient']}"}
