"""Every DocumentReference POST /ingest/cda stores passes the PDSm comprehensive profile it claims;
one that cannot be made valid is refused with a 422 naming the field, and nothing is stored
(issue 20)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cda import convert_cda
from fhir_server.cli import main

FIXTURES = Path(__file__).parent.parent / "cda" / "fixtures"
CDA = {"Content-Type": "application/hl7-cda+xml"}
PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"


@pytest.fixture(scope="module")
def ingest(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with server.client(server.root_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module", autouse=True)
def telemedicine_provider(server) -> None:  # type: ignore[no-untyped-def]
    """The custodian of tlm_da_telemedicine_request.xml, whose documents state no facility type
    nor practice setting: its configuration supplies them."""
    assert main(["facilities", "add", "--server", server.root_url, "--token", server.token, "--finess", "690000055", "--name", "Téléexpertise Fixture",
                 "--facility-type", "SA64", "--practice-setting", "AMBULATOIRE"]) == 0


def stored(fhir: httpx.Client, data: bytes) -> list[dict]:
    master = convert_cda(data).master_identifier
    bundle = fhir.get("/DocumentReference", params={"identifier": f"{master['system']}|{master['value']}"}).json()
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.xml")))
def test_every_cda_fixture_is_stored_as_a_valid_pdsm_document_reference(ingest, fhir, name):  # type: ignore[no-untyped-def]
    data = (FIXTURES / name).read_bytes()
    response = ingest.post("/ingest/cda", content=data, headers=CDA)
    assert response.status_code in (200, 201), response.text
    [document] = stored(fhir, data)
    assert document["meta"]["profile"] == [PDSM]
    assert document["category"] and len(document["content"]) == 1 and document["content"][0]["format"]
    outcome = fhir.post("/DocumentReference/$validate", params={"profile": PDSM}, json=document).json()
    assert [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")] == [], outcome


def test_the_sending_facility_supplies_what_the_document_does_not_state(ingest, fhir):  # type: ignore[no-untyped-def]
    data = (FIXTURES / "tlm_da_telemedicine_request.xml").read_bytes()
    assert ingest.post("/ingest/cda", content=data, headers=CDA).status_code in (200, 201)
    [document] = stored(fhir, data)
    assert document["context"]["facilityType"]["coding"][0]["code"] == "SA64"
    assert document["context"]["practiceSetting"]["coding"][0]["code"] == "AMBULATOIRE"


def test_a_document_type_outside_the_ans_table_is_refused_naming_the_class(ingest, fhir):  # type: ignore[no-untyped-def]
    data = (FIXTURES / "cse_cs8_certificate.xml").read_bytes()
    data = data.replace(b'code="CERT_DECL"', b'code="NOT_A_TYPE"').replace(b"2025.3\"", b"2025.3.99\"")
    response = ingest.post("/ingest/cda", content=data, headers=CDA)
    assert response.status_code == 422, response.text
    issues = response.json()["issue"]
    assert [i["expression"] for i in issues] == [["DocumentReference.category"]]
    assert "NOT_A_TYPE" in issues[0]["diagnostics"] and "ASS_X04_CorrespondanceType_Classe_CISIS version 20260629120000" in issues[0]["diagnostics"]
    assert stored(fhir, data) == []


def test_a_model_outside_the_ans_table_is_refused_naming_the_format(ingest, fhir):  # type: ignore[no-untyped-def]
    data = (FIXTURES / "sdm_mr_rare_disease.xml").read_bytes()
    data = data.replace(b'<templateId root="1.2.250.1.213.1.1.1.30"/>', b'<templateId root="1.2.250.1.999.9"/>').replace(b"2025.4\"", b"2025.4.99\"")
    response = ingest.post("/ingest/cda", content=data, headers=CDA)
    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["expression"] == ["DocumentReference.content.format"]
    assert "ASS_A11_CorresModeleCDA_XdsFormatCode_CISIS" in issue["diagnostics"]
    assert stored(fhir, data) == []


def test_a_missing_facility_type_names_the_configuration_that_would_supply_it(ingest, fhir):  # type: ignore[no-untyped-def]
    data = (FIXTURES / "tlm_da_telemedicine_request.xml").read_bytes()
    # Another custodian, which nobody configured.
    data = data.replace(b'extension="1690000055"', b'extension="1690000099"').replace(b"2025.6\"", b"2025.6.99\"")
    response = ingest.post("/ingest/cda", content=data, headers=CDA)
    assert response.status_code == 422, response.text
    issues = {i["expression"][0]: i["diagnostics"] for i in response.json()["issue"]}
    assert set(issues) == {"DocumentReference.context.facilityType", "DocumentReference.context.practiceSetting"}
    assert all("fhir-server facilities add" in text for text in issues.values())
    assert stored(fhir, data) == []
