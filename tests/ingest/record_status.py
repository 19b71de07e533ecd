"""A patient whose record refuses deposits (issue 12: `opposed` or `closed`), for the intake tests."""

from __future__ import annotations

import copy
from typing import Any

import httpx

RECORD_STATUS = "https://fhir-server.example.org/StructureDefinition/record-status"
REFUSING = ("opposed", "closed")


def refusing_patient(fhir: httpx.Client, patient: dict[str, Any], status: str) -> dict[str, Any]:
    """`patient` stored with its record's status set to `status`."""
    resource = copy.deepcopy(patient)
    resource.pop("id", None)
    resource["extension"] = [*resource.get("extension", []), {"url": RECORD_STATUS, "valueCode": status}]
    response = fhir.post("/Patient", json=resource)
    assert response.status_code == 201, response.text
    return response.json()


def says_the_record_refuses_deposits(text: str) -> bool:
    return "refuses deposits" in text.lower()


def refused_with_outcome(response: httpx.Response) -> None:
    """403 with an OperationOutcome that says why."""
    assert response.status_code == 403, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(says_the_record_refuses_deposits(i.get("diagnostics", "")) for i in outcome["issue"]), outcome


def total(fhir: httpx.Client, query: str, **params: str) -> int:
    response = fhir.get(query, params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])
