"""string parameters: case- and accent-insensitive starts-with; :exact; :contains; :missing; OR, AND."""

from __future__ import annotations

import pytest

from tests.search.conftest import Store


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    return {
        "helene": store.create({"resourceType": "Patient", "name": [{"family": "Lefèvre", "given": ["Hélène", "Marie"]}],
                                "address": [{"city": "Saint-Étienne", "postalCode": "42000"}]}),
        "lefebvre": store.create({"resourceType": "Patient", "name": [{"family": "LEFEBVRE", "given": ["Jean"]}],
                                  "address": [{"city": "Lyon", "postalCode": "69003"}]}),
        "dupont": store.create({"resourceType": "Patient", "name": [{"family": "Dupont-Lefort", "given": ["Zoé"]}]}),
        "unnamed": store.create({"resourceType": "Patient", "gender": "unknown"}),
    }


def test_starts_with_ignoring_case_and_accents(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family": "lefe"}) == {data["helene"], data["lefebvre"]}
    assert store.ids("/Patient", {"family": "LEFÈV"}) == {data["helene"]}
    assert store.ids("/Patient", {"given": "helene"}) == {data["helene"]}
    assert store.ids("/Patient", {"address-city": "saint-etienne"}) == {data["helene"]}


def test_starts_with_is_not_contains(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family": "lefort"}) == set()
    assert store.ids("/Patient", {"family": "efe"}) == set()


def test_address_covers_every_part(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"address": "lyon"}) == {data["lefebvre"]}
    assert store.ids("/Patient", {"address": "4200"}) == {data["helene"]}
    assert store.ids("/Patient", {"address:contains": "etienne"}) == {data["helene"]}
    assert store.ids("/Patient", {"address-postalcode": "69"}) == {data["lefebvre"]}


def test_name_covers_every_part(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"name": "marie"}) == {data["helene"]}
    assert store.ids("/Patient", {"name": "zoe"}) == {data["dupont"]}


def test_exact_is_case_and_accent_sensitive(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family:exact": "Lefèvre"}) == {data["helene"]}
    assert store.ids("/Patient", {"family:exact": "Lefevre"}) == set()
    assert store.ids("/Patient", {"family:exact": "lefèvre"}) == set()
    assert store.ids("/Patient", {"family:exact": "Lefè"}) == set()


def test_exact_or(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family:exact": "LEFEBVRE,Dupont-Lefort"}) == {data["lefebvre"], data["dupont"]}


def test_contains(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family:contains": "LEFORT"}) == {data["dupont"]}
    assert store.ids("/Patient", {"family:contains": "fev"}) == {data["helene"]}
    assert store.ids("/Patient", {"family:contains": "xyz"}) == set()


def test_special_characters_are_literal(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family": "le.e"}) == set()
    assert store.ids("/Patient", {"family:contains": "t-l"}) == {data["dupont"]}


def test_or_and_and(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family": "dupont,lefebvre"}) == {data["dupont"], data["lefebvre"]}
    assert store.ids("/Patient", [("family", "lef"), ("given", "jean")]) == {data["lefebvre"]}
    assert store.ids("/Patient", [("family", "lef"), ("given", "zoe")]) == set()


def test_missing(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family:missing": "true"}) == {data["unnamed"]}
    assert store.ids("/Patient", {"address-city:missing": "false"}) == {data["helene"], data["lefebvre"]}


def test_escaped_comma_is_part_of_the_value(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"family": "lefevre\\,x"}) == set()
