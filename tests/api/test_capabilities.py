"""The CapabilityStatement says what is really registered."""

from __future__ import annotations

import httpx

REQUIRED_TYPES = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Encounter", "DocumentReference", "Binary", "List",
    "Appointment", "Communication", "CommunicationRequest", "Consent", "AuditEvent", "MedicationRequest", "Provenance", "Bundle",
}


def test_metadata(fhir: httpx.Client) -> None:
    statement = fhir.get("/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert REQUIRED_TYPES <= set(resources)
    docref = {p["name"]: p for p in resources["DocumentReference"]["searchParam"]}
    assert {"patient", "type", "category", "date", "period", "facility", "setting", "status", "security-label"} <= set(docref)
    assert docref["patient"]["type"] == "reference"
    assert {"transaction", "batch"} <= {i["code"] for i in statement["rest"][0]["interaction"]}
    assert any(op["name"] == "validate" for op in statement["rest"][0]["operation"])


def test_every_advertised_search_parameter_is_accepted_strictly(fhir: httpx.Client) -> None:
    statement = fhir.get("/metadata").json()
    for resource in statement["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            value = {"date": "2020", "number": "1", "quantity": "1", "token": "x", "reference": "Patient/x",
                     "string": "x", "uri": "http://x", "composite": "x", "special": "x"}[param["type"]]
            response = fhir.get(f"/{resource['type']}", params={param["name"]: value, "_count": "1"},
                                headers={"Prefer": "handling=strict"})
            assert response.status_code == 200, (resource["type"], param["name"], response.text)
