"""SMART scopes: the grammar, the one decision, and granular scopes over HTTP."""

from __future__ import annotations

import pytest

from fhir_server.errors import FhirError
from fhir_server.security.callers import Caller, idnatps
from fhir_server.security.scopes import Scopes, authorize
from tests.security.tokens import bearer, system_token
from tests.server_process import ServerProcess

VITAL = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"


def caller(scope: str) -> Caller:
    return Caller(kind="system", id="test", scopes=Scopes.parse(scope), organization="999000001")


def allowed(scope: str, interaction: str, resource_type: str, **kwargs: object) -> bool:
    try:
        authorize(caller(scope), interaction, resource_type, **kwargs)  # type: ignore[arg-type]
    except FhirError as error:
        assert error.status == 403
        return False
    return True


@pytest.mark.parametrize("scope,interaction,resource_type,expected", [
    ("system/Patient.cruds", "create", "Patient", True),
    ("system/Patient.rs", "create", "Patient", False),
    ("system/Patient.rs", "read", "Patient", True),
    ("system/Patient.r", "search-type", "Patient", False),
    ("system/Patient.s", "history-type", "Patient", True),
    ("system/Patient.r", "history-instance", "Patient", True),
    ("system/Patient.u", "patch", "Patient", True),
    ("system/Patient.d", "delete", "Patient", True),
    ("system/Patient.cruds", "read", "Observation", False),
    ("system/*.rs", "read", "Observation", True),
    ("system/*.rs", "history-system", "*", True),
    ("system/Patient.rs", "history-system", "*", False),
    ("user/Patient.read", "search-type", "Patient", True),
    ("user/Patient.read", "update", "Patient", False),
    ("user/Patient.write", "update", "Patient", True),
    ("user/Patient.write", "read", "Patient", False),
    ("patient/*.*", "delete", "Encounter", True),
    ("openid fhirUser launch/patient", "read", "Patient", False),
])
def test_which_permission_each_interaction_needs(scope: str, interaction: str, resource_type: str, expected: bool) -> None:
    assert allowed(scope, interaction, resource_type) == expected


@pytest.mark.parametrize("scope", ["system/Patient.rc", "system/Patient.x", "system/Patient.", "system/Patient.crudss"])
def test_malformed_permissions_are_refused(scope: str) -> None:
    with pytest.raises(ValueError):
        Scopes.parse(scope)


def test_granular_scopes_need_their_criteria() -> None:
    scope = f"system/Observation.rs?category={VITAL}"
    assert allowed(scope, "search-type", "Observation", criteria=[("category", VITAL), ("patient", "p1")])
    assert not allowed(scope, "search-type", "Observation", criteria=[("patient", "p1")])
    assert not allowed(scope, "search-type", "Observation", criteria=[("category", "laboratory")])
    # Before a read, provisionally; the resource read decides.
    assert allowed(scope, "read", "Observation")
    assert allowed(scope + " system/Observation.r", "read", "Observation", resource={}, matcher=lambda r, c: False)
    assert not allowed(scope, "read", "Observation", resource={}, matcher=lambda r, c: False)
    # What is patched, deleted or listed is not known beforehand: a granular scope does not cover it.
    for interaction in ("patch", "delete", "history-instance"):
        assert not allowed(scope.replace(".rs", ".cruds"), interaction, "Observation")


def test_idnatps_is_8_and_the_rpps() -> None:
    assert idnatps("10001234567") == "810001234567"
    assert idnatps("810001234567") == "810001234567"
    for wrong in ("1000123456", "910001234567", "8100012345678", "1000123456a"):
        with pytest.raises(ValueError):
            idnatps(wrong)


def observation(category: str, unique: str) -> dict:
    system, code = category.split("|")
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "identifier": [{"system": "urn:test:granular", "value": unique}],
            "category": [{"coding": [{"system": system, "code": code}]}]}


def test_a_granular_scope_over_http(server: ServerProcess, fhir, unique: str) -> None:  # type: ignore[no-untyped-def]
    lab = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    vital_id = fhir.post("/Observation", json=observation(VITAL, unique)).json()["id"]
    lab_id = fhir.post("/Observation", json=observation(lab, unique)).json()["id"]
    # A client of no organisation acts as the platform (issue 12): only the scope limits it here.
    token = bearer(system_token(server, f"system/Observation.crs?category={VITAL}", organization=None,
                                client_id="granular-scope-test"))
    url = f"{server.base_url}/Observation"
    found = server.get(url, params={"category": VITAL, "identifier": f"urn:test:granular|{unique}"}, headers=token)
    assert found.status_code == 200 and [e["resource"]["id"] for e in found.json()["entry"]] == [vital_id]
    assert server.get(url, params={"identifier": f"urn:test:granular|{unique}"}, headers=token).status_code == 403
    assert server.get(f"{url}/{vital_id}", headers=token).status_code == 200
    assert server.get(f"{url}/{lab_id}", headers=token).status_code == 403
    json_headers = {**token, "Content-Type": "application/fhir+json"}
    assert server.post(url, json=observation(VITAL, unique), headers=json_headers).status_code == 201
    assert server.post(url, json=observation(lab, unique), headers=json_headers).status_code == 403
    # An include reaches Patient, which the scope does not cover.
    included = server.get(url, params={"category": VITAL, "_include": "Observation:subject"}, headers=token)
    assert included.status_code == 403
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Observation/{vital_id}"}},
        {"request": {"method": "GET", "url": f"Observation/{lab_id}"}}]}
    answer = server.post(server.base_url, json=batch, headers=json_headers).json()
    assert [e["response"]["status"] for e in answer["entry"]] == ["200 OK", "403"]
