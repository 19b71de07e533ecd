"""Codes bound to a required ValueSet in R4 are checked against the whole ValueSet (shipped in
profiles/ from the R4 definitions), also where the R4B models list only some of its codes."""

from __future__ import annotations

import httpx
import pytest

PATIENT = {"reference": "Patient/example-unknown"}
CODE = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
AUDIT = {"resourceType": "AuditEvent", "recorded": "2026-01-01T10:00:00Z",
         "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
         "agent": [{"who": {"display": "x"}, "requestor": True}], "source": {"observer": {"display": "x"}}}


def _issue_paths(response: httpx.Response) -> list[str]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return [e for i in body["issue"] for e in i.get("expression", [])]


REFUSED = [
    ({"resourceType": "Observation", "status": "not-a-status", "code": CODE}, "Observation.status"),
    ({"resourceType": "Encounter", "status": "bogus", "class": {"code": "AMB"}}, "Encounter.status"),
    ({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
      "statusHistory": [{"status": "bogus", "period": {"start": "2026-01-01"}}]}, "Encounter.statusHistory[0].status"),
    ({"resourceType": "Communication", "status": "sent"}, "Communication.status"),
    ({"resourceType": "CommunicationRequest", "status": "draft", "priority": "whenever"}, "CommunicationRequest.priority"),
    ({"resourceType": "MedicationRequest", "status": "active", "intent": "wish", "subject": PATIENT,
      "medicationCodeableConcept": CODE}, "MedicationRequest.intent"),
    ({"resourceType": "Appointment", "status": "booked", "participant": [{"status": "maybe", "actor": PATIENT}]},
     "Appointment.participant[0].status"),
    ({"resourceType": "List", "status": "current", "mode": "bogus"}, "List.mode"),
    ({"resourceType": "Consent", "status": "active", "scope": CODE, "category": [CODE],
      "provision": {"type": "perhaps"}}, "Consent.provision.type"),
    ({"resourceType": "Patient", "telecom": [{"system": "pigeon", "value": "x"}]}, "Patient.telecom[0].system"),
    ({"resourceType": "Patient", "contact": [{"gender": "bogus"}]}, "Patient.contact[0].gender"),
    ({"resourceType": "Observation", "status": "final", "code": CODE,
      "valueQuantity": {"value": 1, "comparator": "~"}}, "Observation.valueQuantity.comparator"),
    ({"resourceType": "Observation", "status": "final", "code": CODE,
      "contained": [{"resourceType": "Medication", "status": "bogus"}]}, "Observation.contained[0].status"),
    ({**AUDIT, "action": "X"}, "AuditEvent.action"),
    ({**AUDIT, "outcome": "3"}, "AuditEvent.outcome"),
    ({"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": PATIENT,
      "medicationCodeableConcept": CODE, "dosageInstruction": [{"timing": {"repeat": {"when": ["sometime"]}}}]},
     "MedicationRequest.dosageInstruction[0].timing.repeat.when[0]"),
]


@pytest.mark.parametrize(("resource", "path"), REFUSED, ids=[p for _, p in REFUSED])
def test_code_outside_a_required_value_set_is_refused(fhir: httpx.Client, resource: dict, path: str) -> None:
    response = fhir.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 400, response.text
    assert path in _issue_paths(response)
    # AuditEvents are append-only (issue 13): no PUT reaches their validation.
    assert fhir.put(f"/{resource['resourceType']}/bindings-{path.replace('[', '-').replace(']', '').replace('.', '-')}",
                    json={**resource, "id": f"bindings-{path.replace('[', '-').replace(']', '').replace('.', '-')}"}).status_code \
        == (405 if resource["resourceType"] == "AuditEvent" else 400)


def test_codes_the_models_do_not_list_are_accepted(fhir: httpx.Client) -> None:
    # R4 observation-status and encounter-status hold more codes than the models enumerate.
    for status in ("corrected", "cancelled", "entered-in-error", "unknown"):
        response = fhir.post("/Observation", json={"resourceType": "Observation", "status": status, "code": CODE})
        assert response.status_code == 201, response.text
    for status in ("entered-in-error", "unknown", "finished"):
        response = fhir.post("/Encounter", json={"resourceType": "Encounter", "status": status, "class": {"code": "AMB"}})
        assert response.status_code == 201, response.text
    # Codes the models do not list at all.
    response = fhir.post("/AuditEvent", json={**AUDIT, "action": "E", "outcome": "0"})
    assert response.status_code == 201, response.text


def test_required_binding_in_a_transaction_names_the_entry(fhir: httpx.Client) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Observation"},
         "resource": {"resourceType": "Observation", "status": "not-a-status", "code": CODE}}]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 400, response.text
    assert "Bundle.entry[0].resource.status" in _issue_paths(response)
