"""POST /ingest/cda: CDA R2 documents land in the record, once, with their metadata."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import etree

FIXTURES = Path(__file__).parent.parent / "cda" / "fixtures"
CDA = {"Content-Type": "application/hl7-cda+xml"}


@pytest.fixture(scope="module")
def ingest(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with server.client(server.root_url, timeout=60) as client:
        yield client


def _post(ingest: httpx.Client, name: str) -> httpx.Response:
    return ingest.post("/ingest/cda", content=(FIXTURES / name).read_bytes(), headers=CDA)


def _document(fhir: httpx.Client, response: httpx.Response) -> dict:
    path = response.headers["Location"].split("/fhir")[1].split("/_history")[0]
    return fhir.get(path).json()


def test_discharge_letter_lands_once(ingest: httpx.Client, fhir: httpx.Client) -> None:
    first = _post(ingest, "ldl_ses_discharge_letter.xml")
    assert first.status_code == 201, first.text
    doc = _document(fhir, first)
    assert doc["resourceType"] == "DocumentReference" and doc["status"] == "current"
    assert doc["type"]["coding"][0]["code"] == "11490-0"
    assert doc["subject"]["reference"].startswith("Patient/")
    patient = fhir.get("/" + doc["subject"]["reference"]).json()
    assert any(i["system"].startswith("urn:oid:1.2.250.1.213.1.4.") for i in patient["identifier"])
    binary = fhir.get("/" + doc["content"][0]["attachment"]["url"], headers={"Accept": "*/*"})
    assert binary.content == (FIXTURES / "ldl_ses_discharge_letter.xml").read_bytes()
    again = _post(ingest, "ldl_ses_discharge_letter.xml")
    assert again.status_code == 200
    assert again.headers["Location"] == first.headers["Location"]
    assert _document(fhir, again)["meta"]["versionId"] == doc["meta"]["versionId"]
    assert fhir.get(f"/Binary/{doc['content'][0]['attachment']['url'].split('/')[1]}", headers={"Accept": "application/fhir+json"}).json()["meta"]["versionId"] == "1"


def test_prescription_lines_become_medication_requests(ingest: httpx.Client, fhir: httpx.Client) -> None:
    """Every line of the prescription, read back from the record, says what the document says:
    the document is read here on its own with XPath, not through the converter."""
    response = _post(ingest, "ep_med_dm_prescription.xml")
    assert response.status_code in (200, 201), response.text
    doc = _document(fhir, response)
    lines = prescription_lines((FIXTURES / "ep_med_dm_prescription.xml").read_bytes())
    assert len(lines) == 2
    for line in lines:
        found = fhir.get("/MedicationRequest", params={"identifier": line["identifier"]}).json()
        [request] = [e["resource"] for e in found.get("entry", [])]
        assert {"reference": f"DocumentReference/{doc['id']}"} in request["supportingInformation"]
        assert request["subject"] == doc["subject"]
        assert (request["status"], request["intent"]) == ("active", "order")
        assert request["medicationCodeableConcept"]["coding"][0]["code"] == line["medication"]
        assert request["dispenseRequest"]["numberOfRepeatsAllowed"] == line["repeats"]
        quantity = request["dispenseRequest"]["quantity"]
        assert (quantity["value"], quantity["code"], quantity["system"]) == line["quantity"]
        dosages = request["dosageInstruction"]
        if not line["phases"]:
            assert dosages == [{"text": line["text"]}]
            continue
        assert len(dosages) == len(line["phases"])
        for dosage, phase in zip(dosages, line["phases"]):
            assert dosage["sequence"] == phase["sequence"]
            assert dosage["text"] == phase["text"]
            dose = dosage["doseAndRate"][0]["doseQuantity"]
            assert (dose["value"], dose["code"], dose["system"]) == phase["dose"]
            assert [(c["system"], c["code"]) for c in dosage["route"]["coding"]] == [line["route"]]
            repeat = dosage["timing"]["repeat"]
            assert repeat["boundsPeriod"] == phase["bounds"]
            assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == phase["every"]
            maximum = dosage["maxDosePerPeriod"]
            assert ((maximum["numerator"]["value"], maximum["numerator"]["code"]),
                    (maximum["denominator"]["value"], maximum["denominator"]["code"])) == line["max_dose"]
        assert dosages[0]["patientInstruction"] == line["instruction"]


HL7 = {"h": "urn:hl7-org:v3", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
CODE_SYSTEMS = json.loads((Path(__file__).parents[2] / "mappings" / "cda" / "code_systems.json").read_text())
UCUM = "http://unitsofmeasure.org"


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def prescription_lines(document: bytes) -> list[dict]:
    """What each prescription line of a CDA document states (PRE, CI-SIS), as expected values."""
    root = etree.fromstring(document)
    narrative = {n.get("ID"): "".join(n.itertext()).strip() for n in root.iterfind(".//h:text//h:content[@ID]", HL7)}

    def one(node: etree._Element, path: str) -> etree._Element:
        [found] = node.xpath(path, namespaces=HL7)
        return found

    def referenced_text(node: etree._Element) -> str:
        return narrative[one(node, "h:text/h:reference/@value").lstrip("#")]

    lines = []
    for line in root.xpath("//h:section/h:entry/h:substanceAdministration", namespaces=HL7):
        identifier = one(line, "h:id")
        route = line.find("h:routeCode", HL7)
        supply = one(line, "h:entryRelationship/h:supply/h:quantity")
        code = one(line, "h:consumable//h:manufacturedMaterial/h:code")
        medication = code.get("code") or one(line, "h:consumable//*[local-name()='ingredient']/*[local-name()='ingredient']/*[local-name()='code']").get("code")
        phases = []
        for component in line.xpath("h:entryRelationship[@typeCode='COMP'][h:substanceAdministration]", namespaces=HL7):
            phase = one(component, "h:substanceAdministration")
            low = datetime.strptime(one(phase, ".//h:comp[@xsi:type='IVL_TS']/h:low/@value"), "%Y%m%d").date()
            width = one(phase, ".//h:comp[@xsi:type='IVL_TS']/h:width")
            assert width.get("unit") == "d"
            period = one(phase, ".//h:comp[@xsi:type='PIVL_TS']/h:period")
            dose = one(phase, "h:doseQuantity")
            phases.append({
                "sequence": int(one(component, "h:sequenceNumber/@value")),
                "text": referenced_text(phase),
                "dose": (_number(dose.get("value")), dose.get("unit"), UCUM),
                "bounds": {"start": low.isoformat(), "end": (low + timedelta(days=int(width.get("value")))).isoformat()},
                "every": (1, _number(period.get("value")), period.get("unit")),
            })
        maximum = line.find("h:maxDoseQuantity", HL7)
        instruction = line.xpath("h:entryRelationship/h:act[h:code/@code='PINSTRUCT']", namespaces=HL7)
        lines.append({
            "identifier": f"urn:oid:{identifier.get('root')}|{identifier.get('extension')}",
            "medication": medication,
            "repeats": int(one(line, "h:repeatNumber/@value")),
            "quantity": (_number(supply.get("value")), supply.get("unit"), CODE_SYSTEMS["0.4.0.127.0.16.1.1.2.1"]),
            "route": (CODE_SYSTEMS[route.get("codeSystem")], route.get("code")) if route is not None else None,
            "max_dose": ((_number(one(maximum, "h:numerator/@value")), one(maximum, "h:numerator/@unit")),
                         (_number(one(maximum, "h:denominator/@value")), one(maximum, "h:denominator/@unit")))
            if maximum is not None else None,
            "instruction": referenced_text(instruction[0]) if instruction else None,
            "text": referenced_text(line),
            "phases": phases,
        })
    return lines


def test_replacement_supersedes(ingest: httpx.Client, fhir: httpx.Client) -> None:
    original = _document(fhir, _post(ingest, "cr_bio_lab_report.xml"))
    replacing = _post(ingest, "cr_bio_lab_report_rplc.xml")
    assert replacing.status_code in (200, 201), replacing.text
    assert fhir.get(f"/DocumentReference/{original['id']}").json()["status"] == "superseded"
    assert _document(fhir, replacing)["status"] == "current"


def test_level1_pdf_is_the_rendering_of_the_one_content(ingest: httpx.Client, fhir: httpx.Client) -> None:
    doc = _document(fhir, _post(ingest, "level1_pdf.xml"))
    [content] = doc["content"]
    assert content["attachment"]["contentType"] == "text/xml"
    assert content["format"]["code"] == "urn:ihe:iti:xds-sd:pdf:2008"
    [rendering] = [e["valueAttachment"] for e in content["extension"]
                   if e["url"] == "https://fhir-server.example.org/StructureDefinition/document-rendering"]
    assert rendering["contentType"] == "application/pdf"
    assert fhir.get("/" + rendering["url"], headers={"Accept": "application/pdf"}).content.startswith(b"%PDF")


@pytest.mark.parametrize(("body", "status"), [
    (b"<not-closed", 400),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ClinicalDocument xmlns="urn:hl7-org:v3">&e;</ClinicalDocument>', 400),
    (b'<?xml version="1.0"?><html><body/></html>', 400),
    (b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/></ClinicalDocument>', 422),
])
def test_bad_documents_are_refused_with_an_outcome(ingest: httpx.Client, body: bytes, status: int) -> None:
    response = ingest.post("/ingest/cda", content=body, headers=CDA)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "root:" not in response.text  # nothing of /etc/passwd was read


def test_wrong_media_type(ingest: httpx.Client) -> None:
    assert ingest.post("/ingest/cda", content=b"{}", headers={"Content-Type": "application/json"}).status_code == 415
