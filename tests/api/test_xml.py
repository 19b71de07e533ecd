"""FHIR XML over HTTP for every kind of interaction: bodies in, answers out, errors in the client's format.

The XML sent is written by hand from the specification's rules (`xml_samples/`); the XML received is
read with lxml and checked against the same rules, so neither direction is only checked against
the server's own converter."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from lxml import etree

SAMPLES = Path(__file__).parent / "xml_samples"
NS = {"f": "http://hl7.org/fhir", "h": "http://www.w3.org/1999/xhtml"}
XML = {"Content-Type": "application/fhir+xml", "Accept": "application/fhir+xml"}
INS = "urn:oid:1.2.250.1.213.1.4.10"


def sample(name: str, identifier: str) -> bytes:
    return (SAMPLES / name).read_bytes().replace(b"IDENTIFIER", identifier.encode())


def xml_of(response: httpx.Response, media: str = "application/fhir+xml") -> etree._Element:
    assert response.headers["content-type"].startswith(media), (response.status_code, response.headers["content-type"])
    return etree.fromstring(response.content)


def value(root: etree._Element, path: str) -> list[str]:
    return [str(v) for v in root.xpath(path, namespaces=NS)]


@pytest.fixture
def created(fhir: httpx.Client, unique: str) -> tuple[str, etree._Element]:
    response = fhir.post("/Patient", content=sample("patient.xml", f"2{unique}"),
                         headers=XML | {"Prefer": "return=representation"})
    assert response.status_code == 201, response.text
    root = xml_of(response)
    return value(root, "f:id/@value")[0], root


def test_an_xml_patient_is_stored_with_its_primitive_extensions_narrative_and_contained(
        fhir: httpx.Client, created: tuple[str, etree._Element]) -> None:
    patient_id, _ = created
    stored = fhir.get(f"/Patient/{patient_id}").json()
    assert stored["name"][0]["id"] == "n1"
    assert stored["name"][0]["given"] == ["Marie", "Louise"]
    assert stored["name"][0]["_given"] == [None, {"extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "CL"}]}]
    assert stored["_birthDate"]["extension"][0]["valueDateTime"] == "1948-03-09T14:35:00+01:00"
    assert stored["birthDate"] == "1948-03-09" and stored["active"] is True and stored["multipleBirthInteger"] == 2
    assert stored["extension"][0]["valueDecimal"] == 3.25
    assert stored["contained"][0] == {"resourceType": "Organization", "id": "clinic", "name": "Clinique des Lilas"}
    assert stored["managingOrganization"]["reference"] == "#clinic"
    div = etree.fromstring(stored["text"]["div"].encode())
    assert div.tag == "{http://www.w3.org/1999/xhtml}div" and div.xpath("string(.)") == "Marie DURAND, née le 9 mars 1948"


def test_read_answers_xml_written_by_the_rules(fhir: httpx.Client, created: tuple[str, etree._Element]) -> None:
    patient_id, _ = created
    root = xml_of(fhir.get(f"/Patient/{patient_id}", params={"_format": "xml"}))
    assert root.tag == "{http://hl7.org/fhir}Patient" and root.nsmap[None] == NS["f"]
    # Elements in the order R4 defines them: id, meta, text, contained, extension, identifier, ..., managingOrganization.
    order = [etree.QName(child).localname for child in root]
    assert order == ["id", "meta", "text", "contained", "extension", "identifier", "active", "name", "gender",
                     "birthDate", "multipleBirthInteger", "managingOrganization"]
    assert value(root, "f:name/@id") == ["n1"]  # an element's id is an attribute, a resource's id an element
    assert value(root, "f:name/f:given/@value") == ["Marie", "Louise"]
    assert value(root, "f:name/f:given[2]/f:extension/@url") == ["http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier"]
    assert value(root, "f:birthDate/f:extension/f:valueDateTime/@value") == ["1948-03-09T14:35:00+01:00"]
    assert value(root, "f:active/@value") == ["true"]
    assert value(root, "f:contained/f:Organization/f:id/@value") == ["clinic"]
    assert root.xpath("f:text/h:div/h:p/h:b/text()", namespaces=NS) == ["DURAND"]
    assert not [e for e in root.iter() if isinstance(e.tag, str) and e.tag.startswith("{http://hl7.org/fhir}")
                and len(e) == 0 and not e.attrib]  # no empty elements


def test_vread_search_and_history_answer_xml(fhir: httpx.Client, created: tuple[str, etree._Element], unique: str) -> None:
    patient_id, _ = created
    vread = xml_of(fhir.get(f"/Patient/{patient_id}/_history/1", headers={"Accept": "application/fhir+xml"}))
    assert value(vread, "f:meta/f:versionId/@value") == ["1"]
    found = xml_of(fhir.get("/Patient", params={"identifier": f"{INS}|2{unique}", "_format": "application/fhir+xml"}))
    assert found.tag == "{http://hl7.org/fhir}Bundle" and value(found, "f:type/@value") == ["searchset"]
    assert value(found, "f:total/@value") == ["1"]
    assert value(found, "f:entry/f:resource/f:Patient/f:id/@value") == [patient_id]
    history = xml_of(fhir.get(f"/Patient/{patient_id}/_history", headers={"Accept": "application/xml"}), "application/xml")
    assert value(history, "f:type/@value") == ["history"]
    assert value(history, "f:entry/f:request/f:method/@value") == ["POST"]


def test_update_and_prefer_answer_xml(fhir: httpx.Client, created: tuple[str, etree._Element], unique: str) -> None:
    patient_id, root = created
    for gender in root.xpath("f:gender", namespaces=NS):
        gender.set("value", "other")
    body = etree.tostring(root)
    updated = fhir.put(f"/Patient/{patient_id}", content=body,
                       headers=XML | {"If-Match": 'W/"1"', "Prefer": "return=OperationOutcome"})
    assert updated.status_code == 200, updated.text
    outcome = xml_of(updated)
    assert outcome.tag == "{http://hl7.org/fhir}OperationOutcome" and value(outcome, "f:issue/f:severity/@value") == ["information"]
    assert fhir.get(f"/Patient/{patient_id}").json()["gender"] == "other"


def test_fhirpath_patch_in_xml(fhir: httpx.Client, created: tuple[str, etree._Element]) -> None:
    patient_id, _ = created
    patch = b"""<Parameters xmlns="http://hl7.org/fhir">
      <parameter><name value="operation"/>
        <part><name value="type"/><valueCode value="replace"/></part>
        <part><name value="path"/><valueString value="Patient.name.where(use = 'official').family"/></part>
        <part><name value="value"/><valueString value="DURAND-MARTIN"/></part>
      </parameter>
    </Parameters>"""
    response = fhir.patch(f"/Patient/{patient_id}", content=patch, headers=XML)
    assert response.status_code == 200, response.text
    assert value(xml_of(response), "f:name/f:family/@value") == ["DURAND-MARTIN"]


def test_transaction_in_and_out_as_xml(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("/", content=sample("transaction.xml", f"2{unique}"), headers=XML)
    assert response.status_code == 200, response.text
    answer = xml_of(response)
    assert value(answer, "f:type/@value") == ["transaction-response"]
    assert value(answer, "f:entry/f:response/f:status/@value") == ["201 Created", "201 Created"]
    observation = value(answer, "f:entry[2]/f:response/f:location/@value")[0].split("/_history")[0]
    stored = fhir.get("/" + observation).json()
    assert stored["valueQuantity"]["value"] == 95.5
    patient = value(answer, "f:entry[1]/f:response/f:location/@value")[0].split("/_history")[0]
    assert stored["subject"]["reference"] == patient


def test_validate_takes_and_answers_xml(fhir: httpx.Client, unique: str) -> None:
    body = b'<Patient xmlns="http://hl7.org/fhir"><gender value="nonsense"/></Patient>'
    outcome = xml_of(fhir.post("/Patient/$validate", content=body, headers=XML))
    assert outcome.tag == "{http://hl7.org/fhir}OperationOutcome"
    assert "error" in value(outcome, "f:issue/f:severity/@value")


def test_errors_answer_an_xml_client_in_xml(fhir: httpx.Client, unique: str) -> None:
    missing = fhir.get(f"/Patient/none-{unique}", headers={"Accept": "application/fhir+xml"})
    assert missing.status_code == 404
    assert value(xml_of(missing), "f:issue/f:code/@value") == ["not-found"]
    unknown = fhir.post("/Patient", headers=XML,
                        content=b'<Patient xmlns="http://hl7.org/fhir"><name><nickname value="x"/></name></Patient>')
    assert unknown.status_code == 400
    refused = xml_of(unknown)
    assert value(refused, "f:issue/f:expression/@value") == ["Patient.name.nickname"]


@pytest.mark.parametrize("body, why", [
    (b"<Patient xmlns='http://hl7.org/fhir'><gender value='female'>", "well-formed"),
    (b"<Patient><gender value='female'/></Patient>", "namespace"),
    (b"<Patient xmlns='http://hl7.org/fhir'><gender>female</gender></Patient>", "value"),
    (b"<Patient xmlns='http://hl7.org/fhir'><gender value=''/></Patient>", "empty"),
    (b"<Patient xmlns='http://hl7.org/fhir'><gender value='female'/><gender value='male'/></Patient>", "once"),
    (b"<Patient xmlns='http://hl7.org/fhir'><active value='yes'/></Patient>", "boolean"),
    (b"<Patient xmlns='http://hl7.org/fhir'><name></name></Patient>", "empty"),
    (b"<Unknown xmlns='http://hl7.org/fhir'/>", "resource type"),
    (b"<!DOCTYPE p [<!ENTITY x 'female'>]><Patient xmlns='http://hl7.org/fhir'><gender value='&x;'/></Patient>",
     "document type declarations"),
    (b"<!DOCTYPE p [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><Patient xmlns='http://hl7.org/fhir'>"
     b"<gender value='&x;'/></Patient>", "document type declarations"),
])
def test_xml_that_is_not_fhir_is_refused_with_400(fhir: httpx.Client, body: bytes, why: str) -> None:
    response = fhir.post("/Patient", content=body, headers={"Content-Type": "application/fhir+xml"})
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "structure" and why in issue["diagnostics"]
    assert "root:" not in response.text  # the entity was never read


def test_media_types_neither_json_nor_xml_are_refused(fhir: httpx.Client, unique: str) -> None:
    assert fhir.get("/metadata", headers={"Accept": "text/csv"}).status_code == 406
    assert fhir.get("/metadata", params={"_format": "html"}).status_code == 406
    refused = fhir.post("/Patient", content=b"a,b", headers={"Content-Type": "text/csv", "Accept": "application/fhir+xml"})
    assert refused.status_code == 415 and value(xml_of(refused), "f:issue/f:code/@value") == ["not-supported"]
    # HAPI's XML client: its preferences by q-value, XML first.
    hapi = fhir.get("/metadata", headers={"Accept": "application/fhir+json;q=0.9, application/fhir+xml;q=1.0"})
    assert xml_of(hapi).tag == "{http://hl7.org/fhir}CapabilityStatement"


def test_refusals_of_the_middlewares_answer_xml_too(server, fhir: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    anonymous = httpx.get(f"{server.base_url}/Patient", headers={"Accept": "application/fhir+xml"})
    assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
    assert value(xml_of(anonymous), "f:issue/f:code/@value") == ["login"]
    audit = fhir.delete("/AuditEvent/x", headers={"Accept": "application/fhir+xml"})
    assert audit.status_code == 405 and xml_of(audit).tag == "{http://hl7.org/fhir}OperationOutcome"
