"""composite parameters (the parts of one value match one component) and Location `near`."""

from __future__ import annotations

import pytest

from tests.search.conftest import STRICT, Store

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
# What the R4 vital-signs profiles, which the server applies by LOINC code, ask of every vital sign.
VITAL_SIGN = {"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                        "code": "vital-signs"}]}],
              "subject": {"reference": "Patient/composite-example"}}


def pressure(systolic: float, diastolic: float, when: str) -> dict:
    def component(code: str, value: float) -> dict:
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}

    return {"resourceType": "Observation", "status": "final", "effectiveDateTime": when, **VITAL_SIGN,
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [component(SYSTOLIC, systolic), component(DIASTOLIC, diastolic)]}


def weight(kg: float) -> dict:
    return {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2024-03-01", **VITAL_SIGN,
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "valueQuantity": {"value": kg, "unit": "kg", "system": UCUM, "code": "kg"}}


def place(name: str, latitude: float, longitude: float) -> dict:
    return {"resourceType": "Location", "name": name, "position": {"latitude": latitude, "longitude": longitude}}


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    return {
        "high": store.create(pressure(150, 95, "2024-03-01T10:00:00Z")),
        # Systolic normal, diastolic above 100: `systolic > 100` must not match through the diastolic.
        "mixed": store.create(pressure(95, 110, "2024-03-02T10:00:00Z")),
        "normal": store.create(pressure(118, 76, "2024-03-03T10:00:00Z")),
        "heavy": store.create(weight(92)),
        "light": store.create(weight(61.5)),
        "lyon": store.create(place("Lyon", 45.7640, 4.8357)),
        "villeurbanne": store.create(place("Villeurbanne", 45.7719, 4.8902)),
        "paris": store.create(place("Paris", 48.8566, 2.3522)),
    }


def test_component_parts_match_one_component(store: Store, data: dict[str, str]) -> None:
    found = store.ids("/Observation", {"component-code-value-quantity": f"{LOINC}|{SYSTOLIC}$gt100"})
    assert found == {data["high"], data["normal"]}
    found = store.ids("/Observation", {"component-code-value-quantity": f"{SYSTOLIC}$gt100|{UCUM}|mm[Hg]"})
    assert found == {data["high"], data["normal"]}
    found = store.ids("/Observation", {"component-code-value-quantity": f"{DIASTOLIC}$ge100"})
    assert found == {data["mixed"]}
    assert store.ids("/Observation", {"component-code-value-quantity": f"{SYSTOLIC}$lt80"}) == set()


def test_code_value_quantity_on_the_observation_itself(store: Store, data: dict[str, str]) -> None:
    found = store.ids("/Observation", {"code-value-quantity": f"{LOINC}|29463-7$gt80|{UCUM}|kg"})
    assert found == {data["heavy"]}
    found = store.ids("/Observation", {"code-value-quantity": "29463-7$61.5"})
    assert found == {data["light"]}
    # combo: the observation's own code and value, or a component's.
    assert store.ids("/Observation", {"combo-code-value-quantity": f"{SYSTOLIC}$150"}) == {data["high"]}
    assert store.ids("/Observation", {"combo-code-value-quantity": "29463-7$92"}) == {data["heavy"]}


def test_composite_values_or_and_missing(store: Store, data: dict[str, str]) -> None:
    either = f"{SYSTOLIC}$gt140,{DIASTOLIC}$gt105"
    assert store.ids("/Observation", {"component-code-value-quantity": either}) == {data["high"], data["mixed"]}
    found = store.ids("/Observation", {"component-code-value-quantity:missing": "true"})
    assert found == {data["heavy"], data["light"]}


def test_a_composite_value_with_the_wrong_number_of_parts_is_refused(store: Store, data: dict[str, str]) -> None:
    response = store.get("/Observation", {"component-code-value-quantity": SYSTOLIC}, STRICT)
    assert response.status_code == 400
    assert "2 parts" in response.json()["issue"][0]["diagnostics"]


def test_near(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Location", {"near": "45.7640|4.8357|10|km"}) == {data["lyon"], data["villeurbanne"]}
    assert store.ids("/Location", {"near": "45.7640|4.8357|1000|m"}) == {data["lyon"]}
    assert store.ids("/Location", {"near": "45.7640|4.8357|500|km"}) == {data["lyon"], data["villeurbanne"], data["paris"]}
    response = store.get("/Location", {"near": "north|4.8"}, STRICT)
    assert response.status_code == 400
