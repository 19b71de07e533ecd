"""Strings are stored normalized (case and accents folded) and exactly."""

import pytest

from fhir_server.search.normalize.string import encode, normalize


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Élodie", "elodie"),
        ("LEFÈVRE-HÔTE", "lefevre-hote"),
        ("  Saint-Étienne \t cedex ", "saint-etienne cedex"),
        ("Müller", "muller"),
        ("ﬁlle", "fille"),
        ("Straße", "strasse"),
        ("Çà et là", "ca et la"),
    ],
)
def test_normalize(raw, normalized):
    assert normalize(raw) == normalized


def test_human_name_parts_are_indexed_separately():
    ix: dict = {}
    sk: dict = {}
    name = {"family": "Lefèvre", "given": ["Élodie", "Marie"], "prefix": ["Mme"], "text": "Élodie LEFÈVRE", "use": "official"}
    encode("name", [("HumanName", name)], ix, sk)
    assert ix["name"] == ["lefevre", "elodie", "marie", "mme", "elodie lefevre"]
    assert ix["name:exact"] == ["Lefèvre", "Élodie", "Marie", "Mme", "Élodie LEFÈVRE"]
    assert sk["name"] == "lefevre"


def test_address_parts_are_indexed_separately():
    ix: dict = {}
    address = {"use": "home", "line": ["12 rue de l'Église"], "city": "Saint-Étienne", "district": "Loire",
               "state": "ARA", "postalCode": "42000", "country": "FRA", "text": "12 rue de l'Église 42000"}
    encode("address", [("Address", address)], ix, {})
    assert ix["address"] == [
        "12 rue de l'eglise", "saint-etienne", "loire", "ara", "42000", "fra", "12 rue de l'eglise 42000",
    ]
    assert "home" not in ix["address"]


def test_equal_values_are_stored_once_and_empty_input_stores_nothing():
    ix: dict = {}
    sk: dict = {}
    encode("title", [("string", "Dupont"), ("string", "DUPONT")], ix, sk)
    assert ix["title"] == ["dupont"]
    assert ix["title:exact"] == ["Dupont", "DUPONT"]
    empty: dict = {}
    encode("title", [], empty, {})
    assert empty == {}
