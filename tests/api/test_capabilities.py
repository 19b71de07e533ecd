"""The CapabilityStatement says what is really registered: every R4 type, every parameter R4 defines."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

R4_SEARCH_PARAMETERS = Path(__file__).resolve().parents[2] / "profiles" / "r4" / "search-parameters.json"
REQUIRED_TYPES = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Encounter", "DocumentReference", "Binary", "List",
    "Appointment", "Communication", "CommunicationRequest", "Consent", "AuditEvent", "MedicationRequest", "Provenance", "Bundle",
    "AllergyIntolerance", "Condition", "Immunization", "MedicationStatement", "MedicationDispense", "Medication",
    "DiagnosticReport", "Procedure", "RelatedPerson", "CarePlan", "Task", "ServiceRequest", "ExplanationOfBenefit",
    "Coverage", "Subscription", "QuestionnaireResponse", "MedicinalProduct", "SubstanceSpecification", "Group",
}
VALUES = {"date": "2020", "number": "1", "quantity": "1", "token": "x", "reference": "Patient/x", "string": "x",
          "uri": "http://x", "special": "45.0|5.0|10|km"}


def _definitions() -> dict[str, dict]:
    bundle = json.loads(R4_SEARCH_PARAMETERS.read_text(encoding="utf-8"))
    return {entry["resource"]["url"]: entry["resource"] for entry in bundle["entry"]}


def search_value(param: dict, definitions: dict[str, dict]) -> str:
    """A well-formed value of an advertised parameter; a composite gets one part per component."""
    if param["type"] != "composite":
        return VALUES[param["type"]]
    components = definitions[param["definition"]]["component"]
    return "$".join(VALUES[definitions[c["definition"]]["type"]] for c in components)


def test_metadata(fhir: httpx.Client) -> None:
    statement = fhir.get("/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert REQUIRED_TYPES <= set(resources)
    assert len(resources) == 145 and "Parameters" not in resources
    docref = {p["name"]: p for p in resources["DocumentReference"]["searchParam"]}
    assert {"patient", "type", "category", "date", "period", "facility", "setting", "status", "security-label",
            "creation", "isArchived"} <= set(docref)
    assert docref["patient"]["type"] == "reference"
    assert docref["patient"]["definition"] == "http://hl7.org/fhir/SearchParameter/clinical-patient"
    observation = {p["name"]: p for p in resources["Observation"]["searchParam"]}
    assert observation["code-value-quantity"]["type"] == "composite"
    assert "_text" not in observation and "_content" not in observation
    assert "Observation:subject" in resources["Observation"]["searchInclude"]
    assert {"Observation:subject", "Condition:patient", "AllergyIntolerance:patient"} <= set(
        resources["Patient"]["searchRevInclude"])
    assert {"transaction", "batch"} <= {i["code"] for i in statement["rest"][0]["interaction"]}
    assert any(op["name"] == "validate" for op in statement["rest"][0]["operation"])


def test_every_advertised_search_parameter_is_accepted_strictly(fhir: httpx.Client) -> None:
    definitions = _definitions()
    statement = fhir.get("/metadata").json()
    refused = []
    for resource in statement["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            response = fhir.get(f"/{resource['type']}", params={param["name"]: search_value(param, definitions),
                                                                "_count": "1"},
                                headers={"Prefer": "handling=strict"})
            if response.status_code != 200:
                refused.append((resource["type"], param["name"], response.text[:200]))
    assert refused == []


def test_full_text_and_named_queries_are_refused_clearly(fhir: httpx.Client) -> None:
    for name in ("_text", "_content", "_query"):
        response = fhir.get("/Condition", params={name: "x"})
        assert response.status_code == 400, name
        issue = response.json()["issue"][0]
        assert issue["code"] == "not-supported" and name in issue["diagnostics"]
