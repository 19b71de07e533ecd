"""A patient whose record refuses deposits (issue 12: `opposed` or `closed`), and a hospital
system depositing into it, for the intake tests. The platform's own token is unrestricted by
design (docs/ACCESS-RULES.md): the deposits are made as a hospital system of an organisation."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fhir_server.security.tokens import default_scopes
from tests.server_process import server_token

RECORD_STATUS = "https://fhir-server.example.org/StructureDefinition/record-status"
REFUSING = ("opposed", "closed")
# The FINESS of the sending facility the HL7 v2 fixtures name (tests/hl7v2/conftest.py).
HOSPITAL_FINESS = "999000001"
# What the refusal says, by status (fhir_server/access/rules.py).
REFUSAL = {"opposed": "nothing is stored for them", "closed": "refuses deposits"}


def hospital_headers(server: Any) -> dict[str, str]:
    token = server_token(server.data_dir, server.base_url, "system", scope=default_scopes("system"),
                         organization=HOSPITAL_FINESS)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def hospital(server: Any) -> Iterator[httpx.Client]:
    """FHIR JSON on the base URL as a hospital system of an organisation."""
    headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json", **hospital_headers(server)}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def hospital_root(server: Any) -> Iterator[httpx.Client]:
    """The server's root (the /ingest routes) as a hospital system of an organisation."""
    with httpx.Client(base_url=server.root_url, headers=hospital_headers(server), timeout=120.0) as client:
        yield client


def refusing_patient(fhir: httpx.Client, patient: dict[str, Any], status: str) -> dict[str, Any]:
    """`patient` stored (by the platform) with its record's status set to `status`."""
    resource = copy.deepcopy(patient)
    resource.pop("id", None)
    resource["extension"] = [*resource.get("extension", []), {"url": RECORD_STATUS, "valueCode": status}]
    response = fhir.post("/Patient", json=resource)
    assert response.status_code == 201, response.text
    return response.json()


def refused_with_outcome(response: httpx.Response, status: str) -> None:
    """403 with an OperationOutcome that says the record takes no deposit."""
    assert response.status_code == 403, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(REFUSAL[status] in i.get("diagnostics", "") for i in outcome["issue"]), outcome


def total(fhir: httpx.Client, query: str, **params: str) -> int:
    response = fhir.get(query, params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])
