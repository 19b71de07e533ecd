"""Parameters common to all resources: _id, _lastUpdated, _tag, _profile, _security, _source."""

from __future__ import annotations

import pytest

from tests.search.conftest import TAG_SYSTEM, Store

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PROFILE = "http://example.org/fhir/StructureDefinition/test-patient"


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    return {
        "plain": store.create({"resourceType": "Patient", "gender": "male"}),
        "restricted": store.create({"resourceType": "Patient", "meta": {
            "security": [{"system": CONFIDENTIALITY, "code": "R"}],
            "source": "urn:oid:1.2.250.1.71.4.2.2#lab-42",
        }}),
        "profiled": store.create({"resourceType": "Patient", "meta": {
            "profile": [f"{PROFILE}|1.0"],
            "tag": [{"system": "http://example.org/workflow", "code": "to-review"}],
            "source": "http://lab.example.org/fhir",
        }}),
    }


def test_id(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"_id": data["plain"]}) == {data["plain"]}
    assert store.ids("/Patient", {"_id": f"{data['plain']},{data['profiled']}"}) == {data["plain"], data["profiled"]}
    assert store.ids("/Patient", {"_id": "no-such-id"}) == set()
    assert store.ids("/Patient", [("_id", data["plain"]), ("gender", "female")]) == set()


def test_tag(store: Store, data: dict[str, str]) -> None:
    assert len(store.ids("/Patient")) == 3  # the module tag itself scopes every query
    assert store.ids("/Patient", {"_tag": "http://example.org/workflow|to-review"}) == {data["profiled"]}
    assert store.ids("/Patient", {"_tag": "to-review"}) == {data["profiled"]}
    assert store.ids("/Patient", {"_tag": "http://example.org/workflow|done"}) == set()
    assert store.ids("/Patient", {"_tag:not": "http://example.org/workflow|to-review"}) == {data["plain"], data["restricted"]}


def test_module_tag_isolates(store: Store, data: dict[str, str]) -> None:
    other = store.fhir.get("/Patient", params={"_tag": f"{TAG_SYSTEM}|not-{store.tag}", "_id": data["plain"]})
    assert other.status_code == 200 and other.json().get("entry", []) == []


def test_security(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"_security": f"{CONFIDENTIALITY}|R"}) == {data["restricted"]}
    assert store.ids("/Patient", {"_security": f"{CONFIDENTIALITY}|V"}) == set()
    assert store.ids("/Patient", {"_security:missing": "true"}) == {data["plain"], data["profiled"]}


def test_profile(store: Store, data: dict[str, str]) -> None:
    # A versioned canonical is found by its bare url and by url|version.
    assert store.ids("/Patient", {"_profile": PROFILE}) == {data["profiled"]}
    assert store.ids("/Patient", {"_profile": f"{PROFILE}|1.0"}) == {data["profiled"]}
    assert store.ids("/Patient", {"_profile": f"{PROFILE}|2.0"}) == set()
    assert store.ids("/Patient", {"_profile": "http://example.org/fhir/StructureDefinition/other"}) == set()


def test_source(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"_source": "urn:oid:1.2.250.1.71.4.2.2#lab-42"}) == {data["restricted"]}
    assert store.ids("/Patient", {"_source": "http://lab.example.org/fhir"}) == {data["profiled"]}
    assert store.ids("/Patient", {"_source": "http://lab.example.org"}) == set()


def test_last_updated(store: Store, data: dict[str, str]) -> None:
    stamps = {name: store.fhir.get(f"/Patient/{rid}").json()["meta"]["lastUpdated"] for name, rid in data.items()}
    first, last = min(stamps.values()), max(stamps.values())
    assert first < last
    by_stamp = {v: data[k] for k, v in stamps.items()}
    assert store.ids("/Patient", {"_lastUpdated": first}) == {by_stamp[first]}
    assert store.ids("/Patient", {"_lastUpdated": f"gt{first}"}) == set(data.values()) - {by_stamp[first]}
    assert store.ids("/Patient", {"_lastUpdated": f"ge{last}"}) == {by_stamp[last]}
    assert store.ids("/Patient", {"_lastUpdated": f"lt{last}"}) == set(data.values()) - {by_stamp[last]}
    assert store.ids("/Patient", {"_lastUpdated": f"le{first}"}) == {by_stamp[first]}
    assert store.ids("/Patient", {"_lastUpdated": f"ne{first}"}) == set(data.values()) - {by_stamp[first]}
    assert store.ids("/Patient", {"_lastUpdated": f"sa{first}"}) == set(data.values()) - {by_stamp[first]}
    assert store.ids("/Patient", {"_lastUpdated": f"eb{last}"}) == set(data.values()) - {by_stamp[last]}
    year = first[:4]
    assert store.ids("/Patient", {"_lastUpdated": year}) >= {by_stamp[first]}
    assert store.ids("/Patient", {"_lastUpdated": f"lt{year}"}) == set()
    assert store.ids("/Patient", [("_lastUpdated", f"ge{first}"), ("_lastUpdated", f"le{last}")]) == set(data.values())
    assert store.ids("/Patient", {"_lastUpdated": f"ap{year}"}) == set(data.values())
    assert store.ids("/Patient", {"_lastUpdated": "ap2001-01-01"}) == set()
