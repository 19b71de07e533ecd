"""One document, one identity, whatever the channel: a CDA sent in an MDM^T02 over MLLP, to
/ingest/cda, over HTTP /ingest/hl7v2 or in an ITI-65 bundle is recognised as the same document,
never a second current DocumentReference (issue 10 item 8)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import mllp_send
from tests.hl7v2.conftest import personalised, personalised_cda
from tests.ingest.record_status import hospital, hospital_headers  # noqa: F401 (fixture)
from tests.mhd.documents import patient, provide_bundle

CDA_HEADERS = {"Content-Type": "application/hl7-cda+xml"}
HL7_HEADERS = {"Content-Type": "x-application/hl7-v2+er7"}


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def root(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    """The /ingest routes as the hospital whose facility sends the MLLP messages (its FINESS): one
    sender on every channel, as the access rules let a hospital update only what it deposited."""
    with httpx.Client(base_url=server.root_url, headers=hospital_headers(server), timeout=60) as client:
        yield client


def identity(tag: str) -> str:
    """The masterIdentifier search token of the personalised imaging report (no extension: RFC 3986 URN)."""
    return f"urn:ietf:rfc:3986|urn:oid:1.2.250.1.999.1.1.7.{int(tag, 16) % 10**9}.20240301"


def documents(fhir: httpx.Client, tag: str, **params: str) -> list[dict]:
    found = fhir.get("/DocumentReference", params={"identifier": identity(tag), **params}).json()
    return [e["resource"] for e in found.get("entry", []) if e["search"]["mode"] == "match"]


def over_mllp(server, message: bytes) -> str:  # type: ignore[no-untyped-def]
    if not getattr(server, "mllp_port", None):
        pytest.skip("the server under test has no MLLP port")
    ack = asyncio.run(mllp_send("127.0.0.1", server.mllp_port, message))
    return er7.parse(ack).text("MSA-1")


def ingest_cda(root: httpx.Client, tag: str) -> httpx.Response:
    return root.post("/ingest/cda", content=personalised_cda("cda_imaging_report.xml", tag), headers=CDA_HEADERS)


def iti65_bundle(fhir: httpx.Client, tag: str, master_id: str) -> dict:
    """An ITI-65 bundle carrying the personalised imaging report, for a patient of its own."""
    ins = "2" + str(int(tag, 16) % 10**14).zfill(14)
    subject = {"reference": f"Patient/{fhir.post('/Patient', json=patient(ins)).json()['id']}"}
    return provide_bundle(subject, master_id, data=personalised_cda("cda_imaging_report.xml", tag), content_type="application/hl7-cda+xml",
                          format_code="urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013")


def test_mllp_then_ingest_cda_is_one_document(server, root, fhir, tag):  # type: ignore[no-untyped-def]
    assert over_mllp(server, personalised("mdm_t02.hl7", tag)) == "AA"
    [stored] = documents(fhir, tag)
    again = ingest_cda(root, tag)
    assert again.status_code == 200, again.text
    assert f"/DocumentReference/{stored['id']}/" in again.headers["Location"]
    assert [d["id"] for d in documents(fhir, tag, status="current")] == [stored["id"]]


def test_ingest_cda_then_mllp_is_one_document(server, root, fhir, tag):  # type: ignore[no-untyped-def]
    first = ingest_cda(root, tag)
    assert first.status_code == 201, first.text
    [stored] = documents(fhir, tag)
    assert over_mllp(server, personalised("mdm_t02.hl7", tag)) == "AA"
    [after] = documents(fhir, tag, status="current")
    assert after["id"] == stored["id"]
    # The message's own metadata now describes it (its MetaDMPMSS flags became labels).
    assert len(after["securityLabel"]) > len(stored["securityLabel"])


def test_http_hl7v2_then_iti65_is_refused_as_a_duplicate(root, fhir, tag):  # type: ignore[no-untyped-def]
    sent = root.post("/ingest/hl7v2", content=personalised("mdm_t02.hl7", tag), headers=HL7_HEADERS)
    assert er7.parse(sent.content).text("MSA-1") == "AA"
    bundle = iti65_bundle(fhir, tag, f"1.2.250.1.999.1.1.7.{int(tag, 16) % 10**9}.20240301")
    answer = fhir.post("", json=bundle)
    assert answer.status_code == 409, answer.text
    assert len(documents(fhir, tag)) == 1


@pytest.mark.parametrize("stated", ["urn:oid:{id}", "{id}"])
def test_iti65_then_ingest_cda_and_mllp_is_one_document(server, root, fhir, hospital, tag, stated):  # type: ignore[no-untyped-def]
    document_id = f"1.2.250.1.999.1.1.7.{int(tag, 16) % 10**9}.20240301"
    bundle = iti65_bundle(fhir, tag, document_id)
    # The sender may write the id in another accepted form: the record keeps the one form of every channel.
    bundle["entry"][1]["resource"]["masterIdentifier"]["value"] = stated.format(id=document_id)
    assert hospital.post("", json=bundle).status_code == 200
    [stored] = documents(fhir, tag)
    assert stored["meta"]["profile"] == ["https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"]
    assert ingest_cda(root, tag).status_code == 200
    assert over_mllp(server, personalised("mdm_t02.hl7", tag)) == "AA"
    assert [d["id"] for d in documents(fhir, tag, status="current")] == [stored["id"]]


def test_iti65_naming_another_document_than_its_cda_is_refused(fhir, tag):  # type: ignore[no-untyped-def]
    bundle = iti65_bundle(fhir, tag, "1.2.250.1.999.1.1.7.1")
    answer = fhir.post("", json=bundle)
    assert answer.status_code == 422
    [issue] = answer.json()["issue"]
    assert issue["expression"] == ["Bundle.entry[1].resource.masterIdentifier"]
    assert "ClinicalDocument/id" in issue["diagnostics"]
    assert documents(fhir, tag) == []


def test_the_mllp_ack_names_the_other_document_when_txa_12_disagrees_with_the_cda(server, fhir, tag):  # type: ignore[no-untyped-def]
    message = personalised("mdm_t02.hl7", tag)
    digits = str(int(tag, 16) % 10**9)
    message = message.replace(f"1.2.250.1.999.1.1.7.{digits}.20240301^CHEXEMPLE".encode(), b"1.2.250.1.999.1.1.7.1^CHEXEMPLE")
    if not getattr(server, "mllp_port", None):
        pytest.skip("the server under test has no MLLP port")
    ack = er7.parse(asyncio.run(mllp_send("127.0.0.1", server.mllp_port, message)))
    assert (ack.text("MSA-1"), ack.text("ERR-2"), ack.text("ERR-2.3"), ack.text("ERR-3.1")) == ("AE", "TXA", "12", "204")
    assert documents(fhir, tag) == []
