"""HL7 v2 over HTTP: the Binary of the carried document names its DocumentReference in
securityContext; the raw message's Binary, which is no document's content, names none."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.hl7v2.test_intake_store import personalised, search

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


@pytest.fixture(scope="module")
def root(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with server.client(server.root_url, timeout=120) as client:
        yield client


@pytest.mark.parametrize("name", ["mdm_t02.hl7", "oru_r01.hl7"])
def test_document_binary_names_its_document(root: httpx.Client, fhir: httpx.Client, name: str) -> None:
    tag = uuid.uuid4().hex[:8]
    response = root.post("/ingest/hl7v2", content=personalised(name, tag), headers=ER7)
    assert response.status_code == 200, response.text
    digits = str(int(tag, 16) % 10**9)
    [document] = search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.1.1.7.{digits}.20240301")
    binary = fhir.get("/" + document["content"][0]["attachment"]["url"], headers={"Accept": "application/fhir+json"})
    assert binary.json()["securityContext"] == {"reference": f"DocumentReference/{document['id']}"}
    [provenance] = search(fhir, f"Provenance?target=DocumentReference/{document['id']}")
    raw = fhir.get("/" + provenance["entity"][0]["what"]["reference"], headers={"Accept": "application/fhir+json"})
    assert "securityContext" not in raw.json()
