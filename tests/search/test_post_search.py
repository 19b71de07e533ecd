"""POST [type]/_search with a form body answers what GET [type]?... answers; conditional
create, update and delete select through the same engine."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.search.conftest import TAG_SYSTEM, Store, entries, link, match_ids

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
LOINC = "http://loinc.org"


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    patient = store.create({"resourceType": "Patient", "name": [{"family": "Noël"}], "birthDate": "1970-01-01"})
    return {
        "patient": patient,
        **{f"obs{i}": store.create({"resourceType": "Observation", "status": "final",
                                    "code": {"coding": [{"system": LOINC, "code": "8867-4" if i % 2 else "9279-1"}]},
                                    "subject": {"reference": f"Patient/{patient}"},
                                    "effectiveDateTime": f"2024-01-{10 + i:02d}"}) for i in range(7)},
    }


def post(store: Store, path: str, params: list[tuple[str, str]], query: list[tuple[str, str]] = ()) -> dict[str, Any]:
    response = store.fhir.post(f"{path}/_search", content=urlencode(store.params(params)), params=list(query), headers=FORM)
    assert response.status_code == 200, response.text
    return response.json()


def ordered(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle.get("entry", ())]


QUERIES = [
    [("code", f"{LOINC}|8867-4")],
    [("subject:Patient.name", "noel"), ("_sort", "-date"), ("_include", "Observation:subject")],
    [("date", "ge2024-01-12"), ("date", "lt2024-01-15"), ("_sort", "date")],
    [("code", "8867-4,9279-1"), ("_count", "2"), ("_sort", "-date"), ("_total", "accurate")],
    [("_summary", "count")],
]


@pytest.mark.parametrize("params", QUERIES)
def test_post_gives_what_get_gives(store: Store, data: dict[str, str], params: list[tuple[str, str]]) -> None:
    got = store.bundle("/Observation", params)
    posted = post(store, "/Observation", params)
    assert ordered(posted) == ordered(got)
    assert posted.get("total") == got.get("total")
    assert link(posted, "next") == link(got, "next")
    assert entries(got, "match") or "_summary" in dict(params)


def test_post_next_link_is_a_get_that_continues(store: Store, data: dict[str, str]) -> None:
    first = post(store, "/Observation", [("code", "8867-4,9279-1"), ("_count", "3"), ("_sort", "date")])
    second = store.fhir.get(link(first, "next") or "")
    assert second.status_code == 200
    seen = [i for _, i in ordered(first) + ordered(second.json())]
    assert len(seen) == len(set(seen)) == 6


def test_post_merges_query_and_body(store: Store, data: dict[str, str]) -> None:
    bundle = post(store, "/Observation", [("date", "2024-01-10")], query=[("code", "9279-1")])
    assert match_ids(bundle) == {data["obs0"]}
    assert match_ids(post(store, "/Observation", [("date", "2024-01-10")], query=[("code", "8867-4")])) == set()


def test_post_with_another_content_type_is_refused(store: Store, data: dict[str, str]) -> None:
    response = store.fhir.post("/Observation/_search", content=b'{"code": "x"}', headers={"Content-Type": "application/json"})
    assert response.status_code == 415


def test_conditional_create_on_any_parameter(store: Store, data: dict[str, str]) -> None:
    resource = store.tagged({"resourceType": "Patient", "name": [{"family": "Unique"}], "birthDate": "1970-01-01"})
    criteria = {"If-None-Exist": urlencode([("family", "noël"), ("birthdate", "1970"), ("_tag", f"{TAG_SYSTEM}|{store.tag}")])}
    existing = store.fhir.post("/Patient", json=resource, headers=criteria)
    assert existing.status_code == 200 and existing.json()["id"] == data["patient"]
    criteria = {"If-None-Exist": urlencode([("family", "noël"), ("birthdate", "1971"), ("_tag", f"{TAG_SYSTEM}|{store.tag}")])}
    assert store.fhir.post("/Patient", json=resource, headers=criteria).status_code == 201


def test_conditional_update_and_delete_by_chain_and_date(store: Store, data: dict[str, str]) -> None:
    criteria = [("subject:Patient.name", "noel"), ("date", "2024-01-16"), store.tag_param]
    target = data["obs6"]
    updated = store.fhir.put("/Observation", params=criteria, json=store.tagged({
        "resourceType": "Observation", "status": "amended", "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{data['patient']}"}, "effectiveDateTime": "2024-01-16"}))
    assert updated.status_code == 200 and updated.json()["id"] == target
    several = store.fhir.delete("/Observation", params=[("subject:Patient.name", "noel"), store.tag_param])
    assert several.status_code == 412
    assert store.fhir.delete("/Observation", params=criteria).status_code in (200, 204)
    assert store.fhir.get(f"/Observation/{target}").status_code == 410
    # A typo in conditional criteria must not select anything: always strict.
    assert store.fhir.delete("/Observation", params=[("subjekt", "x"), store.tag_param]).status_code == 400
