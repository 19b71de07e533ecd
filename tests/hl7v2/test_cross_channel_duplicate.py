"""One message, two channels: an interface engine that sent a message over HTTP and sends it again
over MLLP (a failover, a replay after an outage) gets the same AA, and nothing is stored twice."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import mllp_send
from tests.hl7v2.conftest import personalised

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


@pytest.mark.parametrize("name", ["adt_a01.hl7", "mdm_t02.hl7", "oru_r01.hl7"])
def test_a_message_sent_over_http_then_mllp_is_a_duplicate(server, fhir, name: str) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    message = personalised(name, tag)
    over_http = server.post(f"{server.root_url}/ingest/hl7v2", content=message, headers=ER7, timeout=60)
    assert over_http.status_code == 200, over_http.text
    over_mllp = er7.parse(asyncio.run(mllp_send("127.0.0.1", server.mllp_port, message, timeout=60)))
    assert over_mllp.text("MSA-1") == "AA", over_mllp
    assert over_mllp.text("MSA-2") == er7.parse(over_http.content).text("MSA-2")
    patients = fhir.get("/Patient", params={"identifier": f"urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042"}).json()
    assert [e["resource"]["meta"]["versionId"] for e in patients.get("entry", [])] == ["1"]
