"""quantity (number|system|code, ||code, number prefixes and implicit precision) and uri (exact,
:below, :above, :not, :missing)."""

from __future__ import annotations

import pytest

from tests.search.conftest import STRICT, Store

UCUM = "http://unitsofmeasure.org"


def measured(value: float | int, code: str, unit: str | None = None, system: str | None = UCUM) -> dict:
    quantity: dict = {"value": value, "code": code, "unit": unit or code}
    if system:
        quantity["system"] = system
    return {"resourceType": "Observation", "status": "final", "code": {"text": "lab"}, "valueQuantity": quantity}


def document(url: str | None) -> dict:
    attachment = {"contentType": "application/pdf"}
    if url:
        attachment["url"] = url
    return {"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": attachment}]}


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    return {
        "g100": store.create(measured(100, "g/L")),
        "g99_6": store.create(measured(99.6, "g/L")),
        "g101": store.create(measured(101, "g/L")),
        "mmol": store.create(measured(5.4, "mmol/L")),
        "negative": store.create(measured(-2, "Cel")),
        "local_unit": store.create(measured(100, "GL", unit="grammes par litre", system="http://example.org/units")),
        "text": store.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueString": "n/a"}),
        "doc_a": store.create(document("https://docs.example.org/dmp/2024/a.pdf")),
        "doc_b": store.create(document("https://docs.example.org/dmp/2025/b.pdf")),
        "doc_other": store.create(document("https://other.example.org/a.pdf")),
        "doc_none": store.create(document(None)),
    }


def quantity(store: Store, data: dict[str, str], *values: str) -> set[str]:
    names = {v: k for k, v in data.items()}
    return {names[i] for i in store.ids("/Observation", [("value-quantity", v) for v in values])}


@pytest.mark.parametrize(("value", "expected"), [
    # An integer search value means 99.5 <= x < 100.5 (search.html: implicit precision).
    ("100", {"g100", "g99_6", "local_unit"}),
    ("100.0", {"g100", "local_unit"}),
    ("eq5.4", {"mmol"}),
    ("5.40", {"mmol"}),
    ("ne100", {"g101", "mmol", "negative"}),
    ("gt100", {"g101"}),
    ("ge100", {"g100", "local_unit", "g101"}),
    ("lt100", {"g99_6", "mmol", "negative"}),
    ("le99.6", {"g99_6", "mmol", "negative"}),
    ("lt-1", {"negative"}),
    ("sa100", {"g101"}),
    ("eb5.4", {"negative"}),
    ("ap100", {"g100", "g99_6", "g101", "local_unit"}),
    ("ap5", {"mmol"}),
    (f"100|{UCUM}|g/L", {"g100", "g99_6"}),
    (f"gt99|{UCUM}|g/L", {"g100", "g99_6", "g101"}),
    (f"100|{UCUM}|mmol/L", set()),
    ("100||g/L", {"g100", "g99_6"}),
    ("100||grammes par litre", {"local_unit"}),
    ("100|http://example.org/units|GL", {"local_unit"}),
    ("100|http://example.org/units|", {"local_unit"}),
])
def test_quantity(store: Store, data: dict[str, str], value: str, expected: set[str]) -> None:
    assert quantity(store, data, value) == expected


def test_quantity_or_and(store: Store, data: dict[str, str]) -> None:
    assert quantity(store, data, "5.4,-2") == {"mmol", "negative"}
    assert quantity(store, data, "gt99", "lt100.5") == {"g99_6", "g100", "local_unit"}


def test_quantity_missing_and_malformed(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"value-quantity:missing": "true"}) == {data["text"]}
    assert store.get("/Observation", {"value-quantity": "abc"}, headers=STRICT).status_code == 400
    assert store.get("/Observation", {"value-quantity": "1|x"}, headers=STRICT).status_code == 400


def uri(store: Store, data: dict[str, str], name: str, value: str) -> set[str]:
    names = {v: k for k, v in data.items()}
    return {names[i] for i in store.ids("/DocumentReference", {name: value})}


def test_uri_exact(store: Store, data: dict[str, str]) -> None:
    assert uri(store, data, "location", "https://docs.example.org/dmp/2024/a.pdf") == {"doc_a"}
    assert uri(store, data, "location", "https://docs.example.org/dmp/2024") == set()
    assert uri(store, data, "location", "HTTPS://docs.example.org/dmp/2024/a.pdf") == set()


def test_uri_below(store: Store, data: dict[str, str]) -> None:
    assert uri(store, data, "location:below", "https://docs.example.org/dmp") == {"doc_a", "doc_b"}
    assert uri(store, data, "location:below", "https://docs.example.org/dmp/2025") == {"doc_b"}
    assert uri(store, data, "location:below", "https://nowhere.example.org") == set()


def test_uri_above(store: Store, data: dict[str, str]) -> None:
    assert uri(store, data, "location:above", "https://docs.example.org/dmp/2024/a.pdf/v2") == {"doc_a"}
    assert uri(store, data, "location:above", "https://docs.example.org/dmp") == set()


def test_uri_not_and_missing(store: Store, data: dict[str, str]) -> None:
    assert uri(store, data, "location:not", "https://other.example.org/a.pdf") == {"doc_a", "doc_b", "doc_none"}
    assert uri(store, data, "location:missing", "true") == {"doc_none"}
    assert uri(store, data, "location", "https://other.example.org/a.pdf,https://docs.example.org/dmp/2025/b.pdf") == {"doc_other", "doc_b"}
