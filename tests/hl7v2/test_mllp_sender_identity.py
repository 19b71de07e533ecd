"""An MLLP sender listed in FHIR_MLLP_SENDERS writes as its sending facility's organisation, not
as the platform: it cannot overwrite a document another hospital deposited (issue 12, rule 6)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import mllp_send
from fhir_server.security.tokens import default_scopes
from tests.hl7v2.conftest import personalised, personalised_cda
from tests.hl7v2.test_document_identity import documents
from tests.server_process import server_token

OTHER_HOSPITAL = "888000001"


def test_a_listed_sender_cannot_overwrite_another_hospitals_document(server, fhir: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    if not getattr(server, "mllp_port", None):
        pytest.skip("the server under test has no MLLP port")
    tag = uuid.uuid4().hex[:8]
    token = server_token(server.data_dir, server.base_url, "system", scope=default_scopes("system"),
                         organization=OTHER_HOSPITAL)
    deposited = httpx.post(f"{server.root_url}/ingest/cda", content=personalised_cda("cda_imaging_report.xml", tag),
                           headers={"Content-Type": "application/hl7-cda+xml", "Authorization": f"Bearer {token}"},
                           timeout=60)
    assert deposited.status_code == 201, deposited.text
    [before] = documents(fhir, tag)
    ack = er7.parse(asyncio.run(mllp_send("127.0.0.1", server.mllp_port, personalised("mdm_t02.hl7", tag))))
    assert ack.text("MSA-1") == "AE", ack
    assert "conflict with a stored resource" in ack.text("ERR-8")
    [after] = documents(fhir, tag)
    assert after["meta"]["versionId"] == before["meta"]["versionId"]
