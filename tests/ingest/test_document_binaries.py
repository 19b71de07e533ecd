"""/ingest/cda: the CDA's Binary and the Binary of the file a level-1 CDA embeds name their
DocumentReference in securityContext (docs/ACCESS-RULES.md)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

FIXTURES = Path(__file__).parent.parent / "cda" / "fixtures"
RENDERING = "https://fhir-server.example.org/StructureDefinition/document-rendering"


@pytest.fixture(scope="module")
def ingest(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with server.client(server.root_url, timeout=60) as client:
        yield client


def test_cda_binaries_name_their_document(ingest: httpx.Client, fhir: httpx.Client) -> None:
    response = ingest.post("/ingest/cda", content=(FIXTURES / "level1_pdf.xml").read_bytes(),
                           headers={"Content-Type": "application/hl7-cda+xml"})
    assert response.status_code in (200, 201), response.text
    document = response.json()
    content = document["content"][0]
    rendering = next(e["valueAttachment"] for e in content["extension"] if e["url"] == RENDERING)
    for url in (content["attachment"]["url"], rendering["url"]):
        binary = fhir.get("/" + url, headers={"Accept": "application/fhir+json"}).json()
        assert binary["securityContext"] == {"reference": f"DocumentReference/{document['id']}"}, url
