"""date parameters: precision-aware ranges, every prefix, against dates, dateTimes with zones,
instants and Periods (FHIR R4 search.html#date and #prefix)."""

from __future__ import annotations

import pytest

from tests.search.conftest import STRICT, Store


def observation(**effective: object) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "bp"}, **effective}


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    return {
        "day": store.create(observation(effectiveDateTime="2024-03-15")),
        "instant": store.create(observation(effectiveInstant="2024-03-15T10:30:00Z")),
        "zoned": store.create(observation(effectiveDateTime="2024-03-16T01:30:00+02:00")),  # 2024-03-15T23:30Z
        "period": store.create(observation(effectivePeriod={"start": "2024-03-10", "end": "2024-03-20"})),
        "open": store.create(observation(effectivePeriod={"start": "2024-04-01"})),
        "month": store.create(observation(effectiveDateTime="2024-05")),
        "old": store.create(observation(effectiveDateTime="2020-01-01")),
        "none": store.create(observation()),
        "born": store.create({"resourceType": "Patient", "birthDate": "1980-06"}),
    }


def found(store: Store, data: dict[str, str], *values: str, path: str = "/Observation", code: str = "date") -> set[str]:
    names = {v: k for k, v in data.items()}
    return {names[i] for i in store.ids(path, [(code, v) for v in values])}


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-03-15", {"day", "instant", "zoned"}),
    ("eq2024-03", {"day", "instant", "zoned", "period"}),
    ("2024", {"day", "instant", "zoned", "period", "month"}),
    ("2024-03-15T10:30", {"instant"}),
    ("2024-03-15T23:30:00Z", {"zoned"}),
    ("2024-03-16T01:30:00+02:00", {"zoned"}),
    ("2024-03-16", set()),
    ("ne2024-03-15", {"period", "open", "month", "old"}),
    ("gt2024-03-15", {"period", "open", "month"}),
    ("lt2024-03-15", {"period", "old"}),
    ("ge2024-03-15", {"day", "instant", "zoned", "period", "open", "month"}),
    ("le2024-03-15", {"day", "instant", "zoned", "period", "old"}),
    ("ge2024-03-15T12:00:00Z", {"zoned", "day", "period", "open", "month"}),
    ("le2024-03-15T12:00:00Z", {"instant", "day", "period", "old"}),
    # A period reaching into the search range counts for ge and le (overlap, not R4's gt-or-eq:
    # see fhir_server/search/filters/date.py).
    ("ge2024-03-20", {"period", "open", "month"}),
    ("le2024-03-10", {"period", "old"}),
    ("ge2024-03-21", {"open", "month"}),
    ("le2024-03-09", {"old"}),
    ("sa2024-03-15", {"open", "month"}),
    ("sa2024-03-20", {"open", "month"}),
    ("eb2024-03-15", {"old"}),
    ("eb2024-04", {"day", "instant", "zoned", "period", "old"}),
    ("eb2020", set()),
    ("ap2020-01-01", {"old"}),
])
def test_prefixes(store: Store, data: dict[str, str], value: str, expected: set[str]) -> None:
    assert found(store, data, value) == expected


def test_approximately_is_near_but_not_far(store: Store, data: dict[str, str]) -> None:
    near = found(store, data, "ap2024-03-15")
    assert {"day", "instant", "zoned", "period"} <= near
    assert "old" not in near and "none" not in near


def test_or_and_and(store: Store, data: dict[str, str]) -> None:
    assert found(store, data, "2024-05,2020") == {"month", "old"}
    assert found(store, data, "ge2024-03-01", "lt2024-04-01") == {"day", "instant", "zoned", "period"}
    assert found(store, data, "ge2024-06", "lt2024-04-01") == set()


def test_partial_date_target(store: Store, data: dict[str, str]) -> None:
    def patient(value: str) -> bool:
        return data["born"] in store.ids("/Patient", {"birthdate": value})

    assert patient("1980") and patient("1980-06") and not patient("1980-06-15")
    assert patient("ge1980-06-15") and patient("le1980-06-15") and patient("ne1980-06-15")
    assert patient("sa1980-05") and not patient("sa1980-06")
    assert patient("eb1980-07") and not patient("eb1980-06-30")
    assert not patient("gt1980-06") and not patient("lt1980-06")


def test_missing(store: Store, data: dict[str, str]) -> None:
    assert found(store, data, "true", code="date:missing") == {"none"}


@pytest.mark.parametrize("value", ["2024-13-01", "2024-02-30", "yesterday", "ge", "2024-03-15T25:00"])
def test_malformed_value_is_400(store: Store, data: dict[str, str], value: str) -> None:
    response = store.get("/Observation", {"date": value}, headers=STRICT)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
