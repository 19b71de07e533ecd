"""Every DocumentReference the HL7 v2 adapter stores passes the PDSm comprehensive profile it
claims; one that cannot be made valid is refused with AE naming the field, and nothing is stored
(issue 10 item 9, issue 20)."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.hl7v2.convert import convert_message
from tests.hl7v2.conftest import FIXTURES, personalised

PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"
HL7 = {"Content-Type": "x-application/hl7-v2+er7"}
DOCUMENT_MESSAGES = sorted(p.name for p in FIXTURES.glob("*.hl7") if p.name.startswith(("mdm_", "oru_")))


@pytest.fixture(scope="module")
def root(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with server.client(server.root_url, timeout=60) as client:
        yield client


def send(root: httpx.Client, message: bytes) -> er7.Message:
    return er7.parse(root.post("/ingest/hl7v2", content=message, headers=HL7).content)


def stored_documents(fhir: httpx.Client, message: bytes) -> list[dict]:
    """The stored DocumentReferences with the masterIdentifiers the message's documents get."""
    found = []
    for entry in convert_message(message).bundle["entry"]:
        master = entry["resource"].get("masterIdentifier") if entry["resource"]["resourceType"] == "DocumentReference" else None
        if master:
            bundle = fhir.get("/DocumentReference", params={"identifier": f"{master['system']}|{master['value']}"}).json()
            found += [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    return found


@pytest.mark.parametrize("name", DOCUMENT_MESSAGES)
def test_every_stored_document_is_a_valid_pdsm_document_reference(root, fhir, name):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    message = personalised(name, tag)
    if name in ("mdm_t10_replacement.hl7", "mdm_t04_cancellation.hl7"):
        assert send(root, personalised("mdm_t02.hl7", tag)).text("MSA-1") == "AA"
    ack = send(root, message)
    assert ack.text("MSA-1") == "AA", ack.text("ERR-8")
    documents = stored_documents(fhir, message)
    assert documents
    for document in documents:
        assert document["meta"]["profile"] == [PDSM]
        assert "docStatus" not in document and len(document["content"]) == 1
        outcome = fhir.post("/DocumentReference/$validate", params={"profile": PDSM}, json=document).json()
        assert [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")] == [], (name, outcome)


def test_a_document_nothing_can_complete_is_refused_naming_the_field_and_nothing_is_stored(root, fhir):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    # A text document from a facility nobody configured: no facility type, no practice setting.
    message = personalised("mdm_t02_unknown_patient.hl7", tag).replace(b"|CHEXEMPLE|", b"|INCONNU|", 1)
    ack = send(root, message)
    assert (ack.text("MSA-1"), ack.text("ERR-2"), ack.text("ERR-2.3"), ack.text("ERR-3.1")) == ("AE", "MSH", "4", "101")
    assert "DocumentReference.context.facilityType" in ack.text("ERR-8")
    assert "no sending facility is configured for MSH-4 'INCONNU'" in ack.text("ERR-8")
    assert stored_documents(fhir, message) == []


def test_a_carried_cda_of_unknown_type_is_refused_with_the_table_named(root, fhir):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    message = personalised("mdm_t02.hl7", tag).replace(b"18748-4^CR d'imagerie", b"99999-9^CR d'imagerie")
    cda_type = b'code="18748-4" codeSystem="2.16.840.1.113883.6.1"'
    segments = message.split(b"\r")
    for index, segment in enumerate(segments):
        if segment.startswith(b"OBX|1|ED|"):
            fields = segment.split(b"|")
            parts = fields[5].split(b"^")
            parts[4] = base64.b64encode(base64.b64decode(parts[4]).replace(cda_type, cda_type.replace(b"18748-4", b"99999-9")))
            fields[5] = b"^".join(parts)
            segments[index] = b"|".join(fields)
    ack = send(root, b"\r".join(segments))
    assert (ack.text("MSA-1"), ack.text("ERR-2"), ack.text("ERR-2.3")) == ("AE", "TXA", "2")
    assert "DocumentReference.category" in ack.text("ERR-8")
    assert "99999-9 (http://loinc.org) is not in ASS_X04_CorrespondanceType_Classe_CISIS" in ack.text("ERR-8")
    assert stored_documents(fhir, message) == []
