"""FHIRPath Patch (R4 fhirpatch.html): a Parameters body on PATCH, beside JSON Patch."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

INS = "urn:oid:1.2.250.1.213.1.4.10"
SECRETS = ("DURAND", "Marie", "1948-03-09")


def operation(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    listed: list[dict[str, Any]] = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, given in parts.items():
        if name == "name":
            listed.append({"name": "name", "valueString": given})
        elif name in ("index", "source", "destination"):
            listed.append({"name": name, "valueInteger": given})
        else:
            listed.append({"name": "value", **given})
    return {"name": "operation", "part": listed}


def parameters(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


@pytest.fixture
def patient(fhir: httpx.Client, unique: str) -> dict[str, Any]:
    resource = {"resourceType": "Patient", "identifier": [{"system": INS, "value": f"4{unique}"}],
                "name": [{"use": "official", "family": "DURAND", "given": ["Marie", "Louise"]},
                         {"use": "maiden", "family": "LEROY"}],
                "birthDate": "1948-03-09", "telecom": [{"system": "phone", "value": "0102030405"}]}
    response = fhir.post("/Patient", json=resource)
    assert response.status_code == 201, response.text
    return response.json()


def patch(fhir: httpx.Client, patient: dict[str, Any], *operations: dict[str, Any]) -> httpx.Response:
    return fhir.patch(f"/Patient/{patient['id']}", json=parameters(*operations))


def test_each_operation_type_changes_the_resource(fhir: httpx.Client, patient: dict[str, Any]) -> None:
    response = patch(
        fhir, patient,
        operation("replace", "Patient.name.where(use = 'official').family", value={"valueString": "DURAND-MARTIN"}),
        operation("add", "Patient", name="gender", value={"valueCode": "female"}),
        operation("add", "Patient", name="deceased", value={"valueBoolean": False}),
        operation("insert", "Patient.name[0].given", index=1, value={"valueString": "Anne"}),
        operation("move", "Patient.name", source=1, destination=0),
        operation("delete", "Patient.telecom[0]"),
        operation("add", "Patient", name="contact", value={"part": [
            {"name": "name", "valueHumanName": {"family": "DURAND", "given": ["Paul"]}},
            {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "0607080910"}}]}),
        operation("delete", "Patient.photo"),  # nothing there: delete is "if found"
    )
    assert response.status_code == 200, response.text
    stored = fhir.get(f"/Patient/{patient['id']}").json()
    assert [n.get("use") for n in stored["name"]] == ["maiden", "official"]
    assert stored["name"][1]["family"] == "DURAND-MARTIN" and stored["name"][1]["given"] == ["Marie", "Anne", "Louise"]
    assert stored["gender"] == "female" and stored["deceasedBoolean"] is False
    assert "telecom" not in stored
    assert stored["contact"] == [{"name": {"family": "DURAND", "given": ["Paul"]},
                                  "telecom": [{"system": "phone", "value": "0607080910"}]}]
    assert stored["meta"]["versionId"] == "2"


def test_a_patch_in_a_transaction(fhir: httpx.Client, patient: dict[str, Any]) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": parameters(operation("replace", "Patient.birthDate", value={"valueDate": "1948-03-10"})),
        "request": {"method": "PATCH", "url": f"Patient/{patient['id']}"}}]}
    response = fhir.post("/", json=bundle)
    assert response.status_code == 200, response.text
    assert fhir.get(f"/Patient/{patient['id']}").json()["birthDate"] == "1948-03-10"


@pytest.mark.parametrize("operations, status, said", [
    ([operation("replace", "Patient.name.family", value={"valueString": "X"})], 422, "finds 2 elements"),
    ([operation("replace", "Patient.photo", value={"valueString": "X"})], 422, "finds 0 elements"),
    ([operation("insert", "Patient.name", index=5, value={"valueHumanName": {"family": "X"}})], 422, "past the end"),
    ([operation("move", "Patient.name", source=0, destination=4)], 422, "outside the list"),
    ([operation("add", "Patient", name="birthDate", value={"valueDate": "1950-01-01"})], 422, "already there"),
    ([operation("replace", "Patient.id", value={"valueString": "other"})], 422, "may not change id"),
    ([operation("rename", "Patient.name")], 400, "type must be one of"),
    ([operation("replace", "Patient.name.where(use = ", value={"valueString": "X"})], 400, "unclosed"),
    ([operation("replace", "Patient.name.descendants()", value={"valueString": "X"})], 400, "descendants"),
    ([operation("add", "Patient", name="nickname", value={"valueString": "X"})], 400, "no element 'nickname'"),
    ([operation("replace", "Patient.birthDate")], 400, "needs a value"),
    ([operation("replace", "Patient.name[0].use", value={"valueCode": "unknown-code"})], 400, "HumanName.use"),
])
def test_a_patch_that_does_not_fit_is_refused_without_echoing_the_record(
        fhir: httpx.Client, patient: dict[str, Any], operations: list[dict[str, Any]], status: int, said: str) -> None:
    response = patch(fhir, patient, *operations)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and said in outcome["issue"][0]["diagnostics"]
    assert not any(secret in response.text for secret in SECRETS)
    assert fhir.get(f"/Patient/{patient['id']}").json()["meta"]["versionId"] == "1"


def test_patch_bodies_other_than_the_two_patch_formats_are_refused(fhir: httpx.Client, patient: dict[str, Any]) -> None:
    not_parameters = fhir.patch(f"/Patient/{patient['id']}", json={"resourceType": "Patient"})
    assert not_parameters.status_code == 400 and "Parameters" in not_parameters.text
    form = fhir.patch(f"/Patient/{patient['id']}", content=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and "FHIRPath Patch" in form.text
