"""The Patient compartment, from R4's CompartmentDefinition: compartment searches and record_patient."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fhir_server.search.compartment import PatientCompartment
from fhir_server.search.parameters import SearchParameterRegistry, parameter_files

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


@pytest.fixture(scope="module")
def compartment() -> PatientCompartment:
    return PatientCompartment(SearchParameterRegistry.load(parameter_files(PROFILES)))


def _put(fhir: httpx.Client, resource: dict) -> None:
    response = fhir.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text


def _all_pages(fhir: httpx.Client, url: str, params: dict[str, str]) -> list[str]:
    found: list[str] = []
    response = fhir.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        bundle = response.json()
        found += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
                  if e["search"]["mode"] == "match"]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            return found
        response = fhir.get(following[0])


@pytest.fixture(scope="module")
def record(fhir: httpx.Client) -> dict[str, str]:
    import uuid

    tag = uuid.uuid4().hex[:10]
    me, other = f"cp-{tag}", f"cp-other-{tag}"
    resources = [
        {"resourceType": "Patient", "id": me},
        {"resourceType": "Patient", "id": other, "link": [{"other": {"reference": f"Patient/{me}"}, "type": "seealso"}]},
        {"resourceType": "Observation", "id": f"obs-subject-{tag}", "status": "final", "code": {"text": "x"},
         "subject": {"reference": f"Patient/{me}"}},
        {"resourceType": "Observation", "id": f"obs-performer-{tag}", "status": "final", "code": {"text": "x"},
         "subject": {"reference": f"Patient/{other}"}, "performer": [{"reference": f"Patient/{me}"}]},
        {"resourceType": "AllergyIntolerance", "id": f"allergy-{tag}", "patient": {"reference": f"Patient/{me}"}},
        {"resourceType": "Condition", "id": f"condition-other-{tag}", "subject": {"reference": f"Patient/{other}"}},
        {"resourceType": "Group", "id": f"group-{tag}", "type": "person", "actual": True,
         "member": [{"entity": {"reference": f"Patient/{me}"}}]},
        {"resourceType": "Medication", "id": f"medication-{tag}"},
    ]
    for resource in resources:
        _put(fhir, resource)
    return {"me": me, "other": other, "tag": tag}


def test_type_compartment_search(fhir: httpx.Client, record: dict[str, str]) -> None:
    tag = record["tag"]
    found = _all_pages(fhir, f"/Patient/{record['me']}/Observation", {})
    assert sorted(found) == [f"Observation/obs-performer-{tag}", f"Observation/obs-subject-{tag}"]
    assert _all_pages(fhir, f"/Patient/{record['me']}/Condition", {}) == []
    narrowed = _all_pages(fhir, f"/Patient/{record['me']}/Observation", {"performer": f"Patient/{record['me']}"})
    assert narrowed == [f"Observation/obs-performer-{tag}"]


def test_every_type_compartment_search_follows_pages(fhir: httpx.Client, record: dict[str, str]) -> None:
    tag, me, other = record["tag"], record["me"], record["other"]
    found = _all_pages(fhir, f"/Patient/{me}/*", {"_count": "2"})
    # Group `member` puts the Group in the compartment; the other patient links to this one.
    assert sorted(found) == sorted([
        f"Patient/{me}", f"Patient/{other}", f"Observation/obs-subject-{tag}", f"Observation/obs-performer-{tag}",
        f"AllergyIntolerance/allergy-{tag}", f"Group/group-{tag}",
    ])


def test_types_outside_the_compartment_are_refused(fhir: httpx.Client, record: dict[str, str]) -> None:
    response = fhir.get(f"/Patient/{record['me']}/Medication")
    assert response.status_code == 400
    assert "not in the Patient compartment" in response.json()["issue"][0]["diagnostics"]
    assert fhir.get(f"/Patient/{record['me']}/NoSuchType").status_code == 404
    # The instance history keeps its route.
    history = fhir.get(f"/Patient/{record['me']}/_history").json()
    assert history["type"] == "history"


def test_record_patient_is_the_first_parameter_naming_a_patient(compartment: PatientCompartment) -> None:
    observation = {"resourceType": "Observation", "subject": {"reference": "Group/g"},
                   "performer": [{"reference": "Practitioner/d"}, {"reference": "Patient/p2"}]}
    assert compartment.record_patient(observation) == "p2"
    allergy = {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p1"},
               "recorder": {"reference": "Patient/p2"}}
    assert compartment.record_patient(allergy) == "p1"
    assert compartment.in_patient_compartment(allergy, "p2")
    assert not compartment.in_patient_compartment(allergy, "p3")
    assert compartment.record_patient({"resourceType": "Patient", "id": "p9"}) == "p9"
    assert compartment.record_patient({"resourceType": "Medication", "id": "m"}) is None
    versioned = {"resourceType": "Condition", "subject": {"reference": "Patient/p4/_history/2"}}
    assert compartment.record_patient(versioned) == "p4"
    # An absolute URL names a patient of another server (the examples' `http://hl7.org/fhir/Patient/proband`).
    elsewhere = {"resourceType": "Condition", "subject": {"reference": "http://hl7.org/fhir/Patient/p4"}}
    assert compartment.record_patient(elsewhere) is None
