"""$validate over HTTP, and profiles enforced on writes that claim them."""

from __future__ import annotations

import httpx

from tests.mhd.documents import PDSM, document_reference, patient

DMP_PATIENT = "https://fhir-server.example.org/StructureDefinition/dmp-patient"


def test_validate_conforming_and_not(fhir: httpx.Client) -> None:
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "url": "Binary/x", "size": 1, "hash": "AAAA",
                  "title": "CR", "creation": "2026-07-02T08:30:00+02:00"}
    doc = document_reference({"reference": "Patient/p"}, "1.2.3", attachment)
    ok = fhir.post("/DocumentReference/$validate", json=doc).json()
    assert not [i for i in ok["issue"] if i["severity"] == "error"], ok
    del doc["masterIdentifier"]
    bad = fhir.post("/DocumentReference/$validate", json=doc).json()
    errors = [i for i in bad["issue"] if i["severity"] == "error"]
    assert errors and any("masterIdentifier" in e for i in errors for e in i.get("expression", []))


def test_validate_with_profile_parameter(fhir: httpx.Client) -> None:
    without_ins = {"resourceType": "Patient", "name": [{"family": "X"}]}
    response = fhir.post("/Patient/$validate", params={"profile": DMP_PATIENT}, json=without_ins).json()
    assert any(i["severity"] == "error" for i in response["issue"])
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": patient("248039263001064")}, {"name": "profile", "valueUri": DMP_PATIENT}]}
    fine = fhir.post("/Patient/$validate", json=parameters).json()
    assert not [i for i in fine["issue"] if i["severity"] == "error"], fine


def test_write_claiming_a_profile_is_held_to_it(fhir: httpx.Client) -> None:
    claimed = {"resourceType": "Patient", "meta": {"profile": [DMP_PATIENT]}, "name": [{"family": "X"}]}
    response = fhir.post("/Patient", json=claimed)
    assert response.status_code == 422
    assert response.json()["resourceType"] == "OperationOutcome"


def test_capability_statement_declares_mhd(fhir: httpx.Client) -> None:
    statement = fhir.get("/metadata").json()
    assert any("IHE.MHD.DocumentRecipient" in url for url in statement["instantiates"])
    docref = [r for r in statement["rest"][0]["resource"] if r["type"] == "DocumentReference"][0]
    assert f"{PDSM}/pdsm-comprehensive-document-reference" in docref["supportedProfile"]
