"""Precision-aware UTC ranges for dates, the same for stored values and for search values."""

import pytest

from fhir_server.search.fhirpath_walker import Item
from fhir_server.search.normalize.date import HIGHEST, LOWEST, encode, parse_range


@pytest.mark.parametrize(
    ("value", "lo", "hi"),
    [
        ("2024", "2024-01-01T00:00:00.000000Z", "2024-12-31T23:59:59.999999Z"),
        ("2024-03", "2024-03-01T00:00:00.000000Z", "2024-03-31T23:59:59.999999Z"),
        ("2024-02", "2024-02-01T00:00:00.000000Z", "2024-02-29T23:59:59.999999Z"),
        ("2023-02", "2023-02-01T00:00:00.000000Z", "2023-02-28T23:59:59.999999Z"),
        ("2024-12", "2024-12-01T00:00:00.000000Z", "2024-12-31T23:59:59.999999Z"),
        ("2024-03-01", "2024-03-01T00:00:00.000000Z", "2024-03-01T23:59:59.999999Z"),
        ("2024-03-01T10:00", "2024-03-01T10:00:00.000000Z", "2024-03-01T10:00:59.999999Z"),
        ("2024-03-01T10:00:05", "2024-03-01T10:00:05.000000Z", "2024-03-01T10:00:05.999999Z"),
        ("2024-03-01T10:00:05.1", "2024-03-01T10:00:05.100000Z", "2024-03-01T10:00:05.199999Z"),
        ("2024-03-01T10:00:05.123", "2024-03-01T10:00:05.123000Z", "2024-03-01T10:00:05.123999Z"),
        ("2024-03-01T10:00:05.1234567", "2024-03-01T10:00:05.123456Z", "2024-03-01T10:00:05.123456Z"),
        ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00.000000Z", "2024-03-01T10:00:00.999999Z"),
        ("2024-03-01T01:30:00+02:00", "2024-02-29T23:30:00.000000Z", "2024-02-29T23:30:00.999999Z"),
        ("2024-12-31T22:00:00-05:00", "2025-01-01T03:00:00.000000Z", "2025-01-01T03:00:00.999999Z"),
        ("0001-01-01", LOWEST, "0001-01-01T23:59:59.999999Z"),
        ("9999-12", "9999-12-01T00:00:00.000000Z", HIGHEST),
        ("9999", "9999-01-01T00:00:00.000000Z", HIGHEST),
    ],
)
def test_parse_range(value, lo, hi):
    assert parse_range(value) == (lo, hi)


def test_instants_sort_as_strings():
    earlier = parse_range("0999-01-01")[0]
    later = parse_range("2024-01-01T00:00:00.5+14:00")[0]
    assert earlier < later
    assert len(earlier) == len(later) == len("YYYY-MM-DDTHH:MM:SS.ffffffZ")


@pytest.mark.parametrize(
    "value", ["", "2024-13", "2024-02-30", "24-03-01", "2024-03-01T25:00", "2024/03/01", "2024-03-01T10:00+2", "now"],
)
def test_malformed_values_are_refused(value):
    with pytest.raises(ValueError):
        parse_range(value)


def _encode(items: list[Item]) -> tuple[dict, dict]:
    ix: dict = {}
    sk: dict = {}
    encode("d", items, ix, sk)
    return ix, sk


def test_period_open_ends():
    ix, _ = _encode([("Period", {"start": "2024-03-01"}), ("Period", {"end": "2024-03"})])
    assert ix["d"] == [
        {"l": "2024-03-01T00:00:00.000000Z", "h": HIGHEST},
        {"l": LOWEST, "h": "2024-03-31T23:59:59.999999Z"},
    ]


def test_timing_events_and_lowest_sort_key():
    timing = {"event": ["2024-03-06T08:00:00+01:00", "2024-03-05"], "repeat": {"frequency": 2}}
    ix, sk = _encode([("Timing", timing)])
    assert ix["d"] == [
        {"l": "2024-03-06T07:00:00.000000Z", "h": "2024-03-06T07:00:00.999999Z"},
        {"l": "2024-03-05T00:00:00.000000Z", "h": "2024-03-05T23:59:59.999999Z"},
    ]
    assert sk["d"] == "2024-03-05T00:00:00.000000Z"


def test_values_that_are_not_dates_are_skipped():
    ix, sk = _encode([("string", "last winter"), ("Age", {"value": 40}), (None, None)])
    assert ix == {} and sk == {}
