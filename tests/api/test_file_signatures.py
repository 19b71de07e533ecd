"""A file's declared type against its bytes, over HTTP: a program labelled as a PDF, JPEG or PNG
is a 422 wherever bytes enter the record (Binary raw or JSON, created or updated, an ITI-65
bundle's Binary, an inline Attachment, an HL7 v2 ED document), and nothing of the refused write
is stored."""

from __future__ import annotations

import base64
import random
import re
import uuid

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.cli import main as cli_main
from tests.hl7v2.conftest import FACILITY
from tests.hl7v2.test_intake_store import personalised
from tests.mhd.documents import PDF, document_reference, patient, provide_bundle

# The DOS header every Windows program starts with, then the usual stub text.
PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00This program cannot be run in DOS mode.\r\n" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(64) + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" + bytes(32)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def error_expressions(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [e for issue in response.json()["issue"] if issue["severity"] == "error" for e in issue.get("expression", [])]


@pytest.mark.parametrize(("content_type", "data"), [("application/pdf", PDF), ("image/jpeg", JPEG), ("image/png", PNG)])
def test_files_whose_bytes_match_their_type_are_stored(fhir: httpx.Client, content_type: str, data: bytes) -> None:
    created = fhir.post("/Binary", content=data, headers={"Content-Type": content_type})
    assert created.status_code == 201, created.text
    assert fhir.get(f"/Binary/{created.json()['id']}", headers={"Accept": content_type}).content == data


@pytest.mark.parametrize(("content_type", "data"), [
    ("application/pdf", PROGRAM),
    ("image/jpeg", PROGRAM),
    ("image/png", PROGRAM),
    ("image/png", JPEG),
    ("application/pdf", PNG),
    ("Application/PDF; name=compte-rendu.pdf", PROGRAM),
])
def test_a_disguised_raw_binary_is_refused_and_not_stored(fhir: httpx.Client, content_type: str, data: bytes) -> None:
    binary_id = f"disguised-{uuid.uuid4().hex[:12]}"
    response = fhir.put(f"/Binary/{binary_id}", content=data, headers={"Content-Type": content_type})
    assert error_expressions(response) == ["Binary.data"]
    assert "signature" in response.text
    assert fhir.get(f"/Binary/{binary_id}").status_code == 404


def test_a_disguised_json_binary_is_refused(fhir: httpx.Client) -> None:
    response = fhir.post("/Binary", json={"resourceType": "Binary", "contentType": "application/pdf", "data": b64(PROGRAM)})
    assert error_expressions(response) == ["Binary.data"]


def test_an_update_to_a_disguised_file_keeps_the_document(fhir: httpx.Client) -> None:
    created = fhir.post("/Binary", content=PDF, headers={"Content-Type": "application/pdf"}).json()
    response = fhir.put(f"/Binary/{created['id']}", content=PROGRAM, headers={"Content-Type": "application/pdf"})
    assert response.status_code == 422
    current = fhir.get(f"/Binary/{created['id']}", headers={"Accept": "application/pdf"})
    assert current.content == PDF and current.headers["ETag"] == 'W/"1"'


def test_types_without_a_signature_are_not_checked(fhir: httpx.Client) -> None:
    response = fhir.post("/Binary", content=PROGRAM, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201


def test_a_disguised_inline_attachment_is_refused(fhir: httpx.Client) -> None:
    known = fhir.post("/Patient", json=patient("2" + "".join(random.choice("0123456789") for _ in range(14)))).json()
    master_id = f"1.2.250.1.999.1.1.7.{random.randrange(10**12)}"
    doc = document_reference({"reference": f"Patient/{known['id']}"}, master_id,
                             {"contentType": "application/pdf", "data": b64(PROGRAM), "title": "Ordonnance"})
    doc.pop("meta")
    response = fhir.post("/DocumentReference", json=doc)
    assert error_expressions(response) == ["DocumentReference.content[0].attachment.data"]
    assert fhir.get("/DocumentReference", params={"patient": known["id"]}).json().get("entry", []) == []
    # The same document with its real bytes is accepted.
    doc["content"][0]["attachment"]["data"] = b64(PDF)
    assert fhir.post("/DocumentReference", json=doc).status_code == 201


def test_a_disguised_file_in_a_provide_document_bundle_rejects_the_bundle(fhir: httpx.Client) -> None:
    known = fhir.post("/Patient", json=patient("2" + "".join(random.choice("0123456789") for _ in range(14)))).json()
    master_id = f"1.2.250.1.999.1.1.7.{random.randrange(10**12)}"
    response = fhir.post("", json=provide_bundle({"reference": f"Patient/{known['id']}"}, master_id, data=PROGRAM))
    assert response.status_code == 422, response.text
    assert "signature" in response.text
    assert fhir.get("/DocumentReference", params={"patient": known["id"]}).json().get("entry", []) == []
    assert fhir.get("/List", params={"patient": known["id"]}).json()["total"] == 0


def test_a_disguised_pdf_in_an_hl7v2_document_is_refused_to_the_sender(server) -> None:
    """AE with an ERR the sender can act on, HTTP 422 (not a 500: the content is the sender's to
    fix), and nothing of the message stored. The message is otherwise a shareable document (its
    facility is configured, it states its language and confidentiality), so the signature is the
    only thing refused."""
    assert cli_main(["facilities", "add", "--server", server.root_url, "--token", server.token, *FACILITY]) == 0
    tag = uuid.uuid4().hex[:8]
    message = personalised("mdm_t02.hl7", tag)
    message = message.replace(b"|FRA|UNICODE UTF-8|||", "|FRA|UNICODE UTF-8|fr^français^ISO6391||".encode(), 1)
    message = message.replace(b"|||||AU\r", b"|||||AU|U\r", 1)  # TXA-18: the CDA it no longer carries said so
    message = re.sub(rb"\^TEXT\^XML\^Base64\^[A-Za-z0-9+/=]+", b"^APPLICATION^PDF^Base64^" + b64(PROGRAM).encode(), message)
    response = server.post(f"{server.root_url}/ingest/hl7v2", content=message, headers={"Content-Type": "x-application/hl7-v2+er7"})
    ack = er7.parse(response.content)
    assert (response.status_code, ack.text("MSA-1"), ack.text("ERR-3.1")) == (422, "AE", "102"), ack.text("ERR-8")
    assert "signature" in ack.text("ERR-8")
    digits = str(int(tag, 16) % 10**9)
    found = server.get(f"{server.base_url}/Patient", params={"identifier": f"urn:oid:1.2.250.1.213.1.4.10|1800175{digits}"}).json()
    assert found.get("entry", []) == []
