"""The CDA parser reads nothing a document names: no entity, DTD, parameter entity or XInclude
is resolved, even when a document type declaration gets past the refusal of DOCTYPEs.

A DOCTYPE written in UTF-7 is not seen by the byte-level refusal (its `<!` is base64 text), so
such documents reach libxml2: they show what the parser itself does. A named pipe stands for the
file a document points at: the test sees the moment anything opens it, and the server never
blocks on it because the test then writes to it and closes it.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from lxml import etree

from cda import safe_xml
from cda.errors import CdaError
from tests.cda.conftest import FIXTURES

CDA = {"Content-Type": "application/hl7-cda+xml"}
LEAK = b"LEAKED-FROM-THE-SERVER-DISK"


def utf7(text: str) -> bytes:
    """`text` as UTF-7 base64 runs: no ASCII `<!DOCTYPE` appears in the bytes."""
    return b"+" + base64.b64encode(text.encode("utf-16-be")).rstrip(b"=") + b"-"


def disguised(doctype: str, body: str = '<ClinicalDocument xmlns="urn:hl7-org:v3"/>') -> bytes:
    return b'<?xml version="1.0" encoding="UTF-7"?>\n' + utf7(doctype) + b"\n" + body.encode()


def hostile_documents(target: Path) -> dict[str, bytes]:
    url = target.as_uri()
    return {
        "external DTD subset": disguised(f'<!DOCTYPE ClinicalDocument SYSTEM "{url}">'),
        "parameter entity": disguised(f'<!DOCTYPE ClinicalDocument [<!ENTITY % p SYSTEM "{url}"> %p;]>'),
        "external general entity": disguised(
            f'<!DOCTYPE ClinicalDocument [<!ENTITY e SYSTEM "{url}">]>',
            '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&e;</title></ClinicalDocument>'),
        "XInclude": (f'<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xi="http://www.w3.org/2001/XInclude">'
                     f'<title><xi:include href="{url}" parse="text"/></title></ClinicalDocument>').encode(),
    }


def opened_while(call: Callable[[], object], pipe: Path, timeout: float = 10.0) -> tuple[bool, object]:
    """Run `call`; whether anything opened `pipe` for reading meanwhile, and what `call` returned."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except Exception as exc:  # the caller asserts on what came back, exceptions included
            result["value"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    opened = False
    deadline = time.monotonic() + timeout
    while worker.is_alive() and time.monotonic() < deadline:
        try:
            # Succeeds only when a reader has the pipe open: the parser is reading our "file".
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.01)
            continue
        opened = True
        try:
            os.write(fd, LEAK)
        except BrokenPipeError:
            pass  # the reader gave up already: that it opened the pipe is what counts
        finally:
            os.close(fd)
    worker.join(timeout)
    assert not worker.is_alive(), "the parse did not end"
    return opened, result.get("value")


@pytest.fixture
def pipe(tmp_path: Path) -> Path:
    path = tmp_path / "hospital-secret.dtd"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("name", ["external DTD subset", "parameter entity", "external general entity", "XInclude"])
def test_the_server_opens_no_file_a_document_names(server, pipe: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    document = hostile_documents(pipe)[name]
    with server.client(server.root_url, timeout=15) as client:
        opened, response = opened_while(lambda: client.post("/ingest/cda", content=document, headers=CDA), pipe)
    assert not opened, f"the server opened the file named by a {name}"
    assert isinstance(response, httpx.Response)
    assert response.status_code in (400, 422), response.text
    assert LEAK.decode() not in response.text


def test_a_disguised_doctype_is_still_refused(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.txt"
    secret.write_bytes(LEAK)
    document = hostile_documents(secret)["external general entity"]
    with server.client(server.root_url, timeout=15) as client:
        response = client.post("/ingest/cda", content=document, headers=CDA)
    assert response.status_code == 400, response.text
    assert "forbidden-xml" in response.json()["issue"][0]["diagnostics"]
    assert LEAK.decode() not in response.text


def test_an_xinclude_in_a_stored_document_stays_text(server, fhir: httpx.Client, tmp_path: Path, unique: str) -> None:  # type: ignore[no-untyped-def]
    """A document the server accepts keeps an XInclude as inert markup: nothing of the file it
    names reaches the record."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(LEAK)
    fixture = (FIXTURES / "ldl_ses_discharge_letter.xml").read_bytes()
    include = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret.as_uri()}" parse="text"/>'.encode()
    document = fixture.replace(b"</title>", include + b"</title>", 1)
    # A document of its own (id, set and patient): the fixture itself belongs to tests/ingest.
    numeric = str(int(unique, 16))
    document = (document.replace(b"1.2.250.1.999.1.1.2.2024", f"1.2.250.1.999.1.1.2.{numeric}".encode())
                .replace(b"IPP000417", f"IPP{unique}".encode()).replace(b"262077512345678", f"2{numeric[:14]:0>14}".encode()))
    with server.client(server.root_url, timeout=30) as client:
        response = client.post("/ingest/cda", content=document, headers=CDA)
    assert response.status_code in (200, 201), response.text
    assert LEAK.decode() not in response.text
    reference = response.json()["subject"]["reference"]
    documents = fhir.get("/DocumentReference", params={"subject": reference})
    assert documents.status_code == 200 and LEAK.decode() not in documents.text


# The parser on its own: the second barrier, behind the DOCTYPE refusal and the docinfo check.

@pytest.mark.parametrize("name", ["external DTD subset", "parameter entity", "external general entity", "XInclude"])
def test_the_parser_opens_no_file_a_document_names(pipe: Path, name: str) -> None:
    document = hostile_documents(pipe)[name]
    opened, _ = opened_while(lambda: etree.fromstring(document, safe_xml._PARSER), pipe)
    assert not opened


def test_the_parser_substitutes_no_entity(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(LEAK)
    internal = disguised('<!DOCTYPE ClinicalDocument [<!ENTITY e "INTERNAL-ENTITY-TEXT">]>',
                         '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&e;</title></ClinicalDocument>')
    external = hostile_documents(secret)["external general entity"]
    for document in (internal, external):
        text = etree.tostring(etree.fromstring(document, safe_xml._PARSER))
        assert b"INTERNAL-ENTITY-TEXT" not in text and LEAK not in text
        with pytest.raises(CdaError) as refused:
            safe_xml.parse_xml(document)
        assert refused.value.code == "forbidden-xml"


# Each refusal of parse_xml, with its own code and a message that says why.

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_doctype_is_refused_before_parsing_in_every_encoding(encoding: str) -> None:
    """Refused as a DOCTYPE even when the rest would not parse: the prolog check runs first."""
    document = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><ClinicalDocument><not-closed>').encode(encoding)
    with pytest.raises(CdaError) as refused:
        safe_xml.parse_xml(document)
    assert refused.value.code == "forbidden-xml"
    assert "document type declarations" in refused.value.message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_undecodable_bytes_in_a_wide_encoding_are_a_clean_refusal(encoding: str) -> None:
    document = "<ClinicalDocument/>".encode(encoding) + b"\xff"
    with pytest.raises(CdaError) as refused:
        safe_xml.parse_xml(document)
    assert refused.value.code == "invalid-xml" and "well-formed" in refused.value.message


def test_size_limit_is_inclusive() -> None:
    document = b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    assert safe_xml.parse_xml(document, max_bytes=len(document)).tag == "{urn:hl7-org:v3}ClinicalDocument"
    with pytest.raises(CdaError) as refused:
        safe_xml.parse_xml(document, max_bytes=len(document) - 1)
    assert refused.value.code == "too-large" and str(len(document) - 1) in refused.value.message


def test_depth_limit() -> None:
    nested = b"<a>" * 10 + b"</a>" * 10
    assert safe_xml.parse_xml(nested, max_depth=10) is not None
    with pytest.raises(CdaError) as refused:
        safe_xml.parse_xml(nested, max_depth=9)
    assert refused.value.code == "forbidden-xml" and "deeper than 9" in refused.value.message


def test_malformed_xml_says_where() -> None:
    with pytest.raises(CdaError) as refused:
        safe_xml.parse_xml(b"<ClinicalDocument><title></ClinicalDocument>")
    assert refused.value.code == "invalid-xml" and "line 1" in refused.value.message


@pytest.mark.parametrize("name", ["external DTD subset", "parameter entity"])
def test_a_disguised_doctype_naming_a_file_is_refused_as_a_doctype(tmp_path: Path, name: str) -> None:
    """What the resolver answers (nothing) lets the parse end normally, so the DOCTYPE is what refuses it."""
    secret = tmp_path / "secret.dtd"
    secret.write_bytes(b'<!ENTITY leak "' + LEAK + b'">')
    with pytest.raises(CdaError) as refused:
        safe_xml.parse_xml(hostile_documents(secret)[name])
    assert refused.value.code == "forbidden-xml" and "document type declarations" in refused.value.message
