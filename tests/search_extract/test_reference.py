"""Reference encodings: `Type/id`, absolute URLs and urns whole, canonicals, identifiers."""

import pytest

from fhir_server.search.normalize.reference import encode, reference_key, reference_type


@pytest.mark.parametrize(
    ("literal", "key"),
    [
        ("Patient/123", "Patient/123"),
        ("Patient/123/_history/4", "Patient/123"),
        ("https://example.org/fhir/Patient/123", "https://example.org/fhir/Patient/123"),
        ("urn:uuid:2f1d0a7e-3c44-4b7a-8a8e-0d1b7e2c9f10", "urn:uuid:2f1d0a7e-3c44-4b7a-8a8e-0d1b7e2c9f10"),
        ("urn:oid:1.2.250.1.71", "urn:oid:1.2.250.1.71"),
    ],
)
def test_reference_key(literal, key):
    assert reference_key(literal) == key


def test_reference_type():
    assert reference_type("Patient/1/_history/2") == "Patient"
    assert reference_type("https://example.org/fhir/Practitioner/9") == "Practitioner"
    assert reference_type("urn:uuid:2f1d0a7e-3c44-4b7a-8a8e-0d1b7e2c9f10") is None


def test_single_parameter_is_stored_as_a_string():
    ix: dict = {}
    sk: dict = {}
    encode("patient", [("Reference", {"reference": "Patient/1/_history/2"})], ix, sk, single=True)
    assert ix == {"patient": "Patient/1"}
    assert sk == {"patient": "Patient/1"}


def test_repeating_parameter_is_stored_as_a_list_with_identifiers():
    ix: dict = {}
    items = [
        ("Reference", {"reference": "Practitioner/1"}),
        ("Reference", {"reference": "Practitioner/1"}),
        ("Reference", {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810002909371"}}),
    ]
    encode("author", items, ix, {}, single=False)
    assert ix["author"] == ["Practitioner/1"]
    assert ix["author:identifier"] == [
        "urn:oid:1.2.250.1.71.4.2.1|810002909371", "*|810002909371", "urn:oid:1.2.250.1.71.4.2.1|*",
    ]


def test_canonical_is_searchable_with_and_without_version():
    ix: dict = {}
    encode("instantiates-canonical", [("canonical", "http://example.org/PlanDefinition/p|2.0")], ix, {}, single=False)
    assert ix["instantiates-canonical"] == ["http://example.org/PlanDefinition/p", "http://example.org/PlanDefinition/p|2.0"]


def test_reference_with_display_only_stores_nothing():
    ix: dict = {}
    sk: dict = {}
    encode("subject", [("Reference", {"display": "Anonyme"})], ix, sk, single=True)
    assert ix == {} and sk == {}
