"""HL7 v2 MetaDMPMSS flags are TRE_A07 labels under the system every other channel and the
access rules use; a message flagging a document both MASQUE_PS and INVISIBLE_PATIENT is refused
(AE with ERR saying why) and stores nothing (issue 12, rule 9)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from tests.hl7v2.test_intake_store import personalised, search

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}
VISIBILITY = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
MASKED_NO = b"MASQUE_PS^Masqu\xc3\xa9 aux professionnels de Sant\xc3\xa9^MetaDMPMSS||N"
MASKED_YES = MASKED_NO[:-1] + b"Y"


@pytest.fixture(scope="module")
def root(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with server.client(server.root_url, timeout=120) as client:
        yield client


def test_flags_become_tre_a07_labels(root: httpx.Client, fhir: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    response = root.post("/ingest/hl7v2", content=personalised("mdm_t02.hl7", tag), headers=ER7)
    assert response.status_code == 200, response.text
    digits = str(int(tag, 16) % 10**9)
    [document] = search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.1.1.7.{digits}.20240301")
    visibility = [c["code"] for label in document["securityLabel"] for c in label["coding"] if c["system"] == VISIBILITY]
    assert visibility == ["INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"]


def test_masked_and_invisible_is_refused_with_an_err_saying_why(root: httpx.Client, fhir: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    message = personalised("mdm_t02.hl7", tag)
    assert MASKED_NO in message
    response = root.post("/ingest/hl7v2", content=message.replace(MASKED_NO, MASKED_YES), headers=ER7)
    ack = er7.parse(response.content)
    assert ack.text("MSA-1") == "AE", response.content
    assert response.status_code == 422
    assert "cannot also be invisible to the patient" in ack.text("ERR-8")
    digits = str(int(tag, 16) % 10**9)
    assert search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.1.1.7.{digits}.20240301") == []
