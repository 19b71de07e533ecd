"""Vital signs over HTTP: an Observation with a vital-sign LOINC code is held to the R4 profile of
that code (UCUM units among them) whether or not it claims it, and a refusal stores nothing."""

from __future__ import annotations

import copy

import httpx
import pytest

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VITAL_SIGNS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}


def quantity(value: float, code: str) -> dict:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def observation(unique: str, code: str, display: str, **value: dict) -> dict:
    return {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:test:vital-signs", "value": unique}],
        "status": "final",
        "category": [VITAL_SIGNS],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{unique}"},
        "effectiveDateTime": "2026-11-30T08:15:00+01:00",
        **value,
    }


def weight(unique: str, value: float = 72.5, unit: str = "kg") -> dict:
    return observation(unique, "29463-7", "Body weight", valueQuantity=quantity(value, unit))


def blood_pressure(unique: str, unit: str = "mm[Hg]") -> dict:
    def component(code: str, value: float) -> dict:
        return {"code": {"coding": [{"system": LOINC, "code": code}]}, "valueQuantity": quantity(value, unit)}

    return observation(unique, "85354-9", "Blood pressure panel", component=[component("8480-6", 128), component("8462-4", 81)])


def stored(fhir: httpx.Client, unique: str) -> list[dict]:
    response = fhir.get("/Observation", params={"identifier": f"urn:test:vital-signs|{unique}"})
    assert response.status_code == 200
    return [entry["resource"] for entry in response.json().get("entry", [])]


def refused(response: httpx.Response) -> list[str]:
    """The 422 OperationOutcome's error expressions."""
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return [e for issue in outcome["issue"] if issue["severity"] == "error" for e in issue.get("expression", [])]


@pytest.mark.parametrize(("build", "unit"), [
    (lambda u: weight(u, 72.5, "kg"), "kg"),
    (lambda u: weight(u, 72500, "g"), "g"),
    (lambda u: weight(u, 160, "[lb_av]"), "[lb_av]"),
    (lambda u: observation(u, "8302-2", "Body height", valueQuantity=quantity(178, "cm")), "cm"),
    (lambda u: observation(u, "8302-2", "Body height", valueQuantity=quantity(70, "[in_i]")), "[in_i]"),
    (lambda u: observation(u, "39156-5", "BMI", valueQuantity=quantity(22.9, "kg/m2")), "kg/m2"),
    (lambda u: blood_pressure(u), "mm[Hg]"),
])
def test_vital_signs_in_the_profile_units_are_stored(fhir: httpx.Client, unique: str, build, unit: str) -> None:
    response = fhir.post("/Observation", json=build(unique))
    assert response.status_code == 201, response.text
    assert len(stored(fhir, unique)) == 1


def test_a_body_weight_in_metres_is_refused_naming_the_element(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("/Observation", json=weight(unique, 1.8, "m"))
    assert "Observation.valueQuantity.code" in refused(response)
    assert "ucum-bodyweight" in response.text
    assert stored(fhir, unique) == []


@pytest.mark.parametrize(("build", "element"), [
    (lambda u: observation(u, "8302-2", "Body height", valueQuantity=quantity(72, "kg")), "Observation.valueQuantity.code"),
    (lambda u: observation(u, "39156-5", "BMI", valueQuantity=quantity(22.9, "kg")), "Observation.valueQuantity.code"),
    (lambda u: blood_pressure(u, "kPa"), "Observation.component[0].valueQuantity.code"),
    # The profile's other rules come with it: a vital sign says it is one and when it was taken.
    (lambda u: {k: v for k, v in weight(u).items() if k != "category"}, "Observation.category"),
    (lambda u: {k: v for k, v in weight(u).items() if k != "effectiveDateTime"}, "Observation.effective[x]"),
])
def test_other_vital_signs_outside_their_profile_are_refused(fhir: httpx.Client, unique: str, build, element: str) -> None:
    assert element in refused(fhir.post("/Observation", json=build(unique)))
    assert stored(fhir, unique) == []


def test_a_blood_pressure_without_its_diastolic_component_is_refused(fhir: httpx.Client, unique: str) -> None:
    sent = blood_pressure(unique)
    sent["component"] = sent["component"][:1]
    response = fhir.post("/Observation", json=sent)
    assert refused(response) and "DiastolicBP" in response.text
    assert stored(fhir, unique) == []


def test_an_update_to_metres_is_refused_and_the_weight_stays(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Observation", json=weight(unique)).json()
    changed = copy.deepcopy(created)
    changed["valueQuantity"] = quantity(1.8, "m")
    assert "Observation.valueQuantity.code" in refused(fhir.put(f"/Observation/{created['id']}", json=changed))
    [current] = stored(fhir, unique)
    assert (current["meta"]["versionId"], current["valueQuantity"]["code"]) == ("1", "kg")


def test_other_observations_keep_their_own_units(fhir: httpx.Client, unique: str) -> None:
    """Only the listed codes impose a profile: a lab result in any unit is not a vital sign."""
    glucose = observation(unique, "2345-7", "Glucose", valueQuantity=quantity(5.4, "mmol/L"))
    del glucose["category"]
    assert fhir.post("/Observation", json=glucose).status_code == 201
