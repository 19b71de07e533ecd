"""Unknown and malformed parameters: `Prefer: handling=strict` answers 400 with an OperationOutcome;
lenient handling (the default) ignores them, says so in an outcome entry and leaves them out of the
self link."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.search.conftest import STRICT, Store, entries, link, match_ids

LENIENT = {"Prefer": "handling=lenient"}


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    return {
        "anne": store.create({"resourceType": "Patient", "gender": "female", "birthDate": "1990-02-03",
                              "name": [{"family": "Roy"}], "managingOrganization": {"reference": "Organization/x"}}),
        "paul": store.create({"resourceType": "Patient", "gender": "male", "birthDate": "1985-07-08"}),
    }


def self_params(bundle: dict) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(link(bundle, "self") or "").query)


BAD = [
    ("nosuch", "1"),                      # unknown parameter
    ("gender:exact", "female"),           # modifier the type does not have
    ("birthdate", "the-third"),           # malformed date
    ("gender:missing", "perhaps"),        # :missing takes true or false
    ("organization.nosuch", "x"),         # chain to an unknown parameter
    ("_has:Encounter:nosuch:status", "x"),  # _has through a parameter Encounter lacks
    ("_sort", "nosuch"),
    ("_count", "many"),
    ("_total", "sometimes"),
    ("_summary", "brief"),
    ("_include", "Patient:gender"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_strict_refuses(store: Store, data: dict[str, str], name: str, value: str) -> None:
    response = store.get("/Patient", [("gender", "female"), (name, value)], headers=STRICT)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] in ("error", "fatal")


@pytest.mark.parametrize("headers", [None, LENIENT])
@pytest.mark.parametrize(("name", "value"), BAD)
def test_lenient_ignores(store: Store, data: dict[str, str], name: str, value: str, headers: dict | None) -> None:
    bundle = store.bundle("/Patient", [("gender", "female"), (name, value)], headers=headers)
    assert match_ids(bundle) == {data["anne"]}
    kept = self_params(bundle)
    assert (name, value) not in kept and ("gender", "female") in kept
    warnings = [i for e in entries(bundle, "outcome") for i in e["resource"]["issue"]]
    assert warnings and all(i["severity"] == "warning" for i in warnings)


def test_lenient_ignored_include_includes_nothing(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("/Patient", [("_id", data["anne"]), ("_include", "Patient:gender")])
    assert entries(bundle, "include") == [] and "_include" not in dict(self_params(bundle))


def test_known_parameters_are_kept_in_the_self_link(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("/Patient", [("birthdate", "ge1980"), ("_sort", "-birthdate"), ("_count", "1")])
    kept = self_params(bundle)
    assert ("birthdate", "ge1980") in kept and ("_sort", "-birthdate") in kept and ("_count", "1") in kept
    assert entries(bundle, "outcome") == []


def test_format_and_pretty_are_never_errors(store: Store, data: dict[str, str]) -> None:
    response = store.get("/Patient", [("gender", "male"), ("_format", "json"), ("_pretty", "true")], headers=STRICT)
    assert response.status_code == 200 and match_ids(response.json()) == {data["paul"]}


def test_foreign_page_cursor_is_refused_even_when_lenient(store: Store, data: dict[str, str]) -> None:
    response = store.get("/Patient", {"_page": "bm90LWEtY3Vyc29y"})
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
