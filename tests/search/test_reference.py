"""reference parameters: Type/id, id, absolute URL, :Type, :identifier, :missing, versions, OR."""

from __future__ import annotations

import pytest

from tests.search.conftest import Store

INS = "urn:oid:1.2.250.1.213.1.4.8"
EXTERNAL = "https://other.example.org/fhir/Patient/ext-1"


def observation(subject: dict | None) -> dict:
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}}
    if subject is not None:
        resource["subject"] = subject
    return resource


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    patient = store.create({"resourceType": "Patient", "name": [{"family": "Martin"}]})
    other = store.create({"resourceType": "Patient", "name": [{"family": "Durand"}]})
    base = str(store.fhir.base_url).rstrip("/")
    return {
        "patient": patient,
        "other": other,
        "relative": store.create(observation({"reference": f"Patient/{patient}"})),
        "versioned": store.create(observation({"reference": f"Patient/{patient}/_history/1"})),
        "absolute_local": store.create(observation({"reference": f"{base}/Patient/{other}"})),
        "external": store.create(observation({"reference": EXTERNAL})),
        "identifier": store.create(observation({"identifier": {"system": INS, "value": "1840512345678"}})),
        "device": store.create(observation({"reference": f"Device/{patient}"})),
        "none": store.create(observation(None)),
    }


def test_type_and_id(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"subject": f"Patient/{data['patient']}"}) == {data["relative"], data["versioned"]}


def test_bare_id_matches_every_target_type(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"subject": data["patient"]}) == {data["relative"], data["versioned"], data["device"]}


def test_type_modifier(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"subject:Patient": data["patient"]}) == {data["relative"], data["versioned"]}
    assert store.ids("/Observation", {"subject:Device": data["patient"]}) == {data["device"]}
    assert store.ids("/Observation", {"subject:Location": data["patient"]}) == set()


def test_patient_parameter_only_follows_patient_references(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"patient": data["patient"]}) == {data["relative"], data["versioned"]}


def test_reference_to_this_server_by_absolute_url(store: Store, data: dict[str, str]) -> None:
    base = str(store.fhir.base_url).rstrip("/")
    # Stored relative, searched by this server's absolute URL.
    assert store.ids("/Observation", {"subject": f"{base}/Patient/{data['patient']}"}) == {data["relative"], data["versioned"]}
    # Stored absolute: found by that URL, like any absolute reference.
    assert store.ids("/Observation", {"subject": f"{base}/Patient/{data['other']}"}) == {data["absolute_local"]}


def test_external_absolute_url(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"subject": EXTERNAL}) == {data["external"]}
    assert store.ids("/Observation", {"subject": "https://other.example.org/fhir/Patient/ext-2"}) == set()


def test_versioned_search_value(store: Store, data: dict[str, str]) -> None:
    assert data["relative"] in store.ids("/Observation", {"subject": f"Patient/{data['patient']}/_history/1"})


def test_identifier_modifier(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"subject:identifier": f"{INS}|1840512345678"}) == {data["identifier"]}
    assert store.ids("/Observation", {"subject:identifier": "1840512345678"}) == {data["identifier"]}
    assert store.ids("/Observation", {"subject:identifier": f"{INS}|1840599999999"}) == set()


def test_or_and_missing(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"subject": f"Patient/{data['patient']},{EXTERNAL}"}) == {data["relative"], data["versioned"], data["external"]}
    assert store.ids("/Observation", {"subject:missing": "true"}) == {data["none"], data["identifier"]}
    assert data["none"] not in store.ids("/Observation", {"subject:missing": "false"})


def test_unknown_id_matches_nothing(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"subject": "Patient/does-not-exist"}) == set()
