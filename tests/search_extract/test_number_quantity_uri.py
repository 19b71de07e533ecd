"""Number, quantity and uri encodings."""

from decimal import Decimal

from fhir_server.search.normalize import number, quantity, uri


def test_numbers_are_floats_with_the_minimum_as_sort_key():
    ix: dict = {}
    sk: dict = {}
    number.encode("n", [("integer", 3), ("decimal", Decimal("2.5")), ("decimal", "7"), ("boolean", True)], ix, sk)
    assert ix["n"] == [3.0, 2.5, 7.0]
    assert sk["n"] == 2.5


def test_quantities_keep_system_code_and_unit():
    ix: dict = {}
    sk: dict = {}
    items = [
        ("Quantity", {"value": 128, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}),
        ("Duration", {"value": 5.5}),
        ("SampledData", {"origin": {"value": 0}, "data": "1 2 3"}),
    ]
    quantity.encode("q", items, ix, sk)
    assert ix["q"] == [
        {"v": 128.0, "s": "http://unitsofmeasure.org", "c": "mm[Hg]", "u": "mmHg"},
        {"v": 5.5, "s": None, "c": None, "u": None},
    ]
    assert sk["q"] == 5.5


def test_uris_and_versioned_canonicals():
    ix: dict = {}
    sk: dict = {}
    uri.encode("u", [("uri", "urn:oid:1.2.3"), ("canonical", "http://example.org/SD/p|1.0"), ("uri", "urn:oid:1.2.3")], ix, sk)
    assert ix["u"] == ["urn:oid:1.2.3", "http://example.org/SD/p", "http://example.org/SD/p|1.0"]
    assert sk["u"] == "urn:oid:1.2.3"
