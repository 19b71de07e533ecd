"""Intake against the real server and its store: conversion, one transaction, ACK, replays.

`handle_message` is given the server's own FHIR transaction and read interactions over HTTP,
so every bundle the maps produce is checked by the real transaction processing and stored.
"""

import asyncio
import base64
import uuid
from typing import Any

import httpx
import pytest

from fhir_server.errors import FhirError
from fhir_server.facilities import Remembered
from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.hl7v2.intake import RAW_CONTENT_TYPE, Hl7Result, ack_handler, handle_message
from fhir_server.ingest.mllp import frame, mllp_send, read_frame, start_mllp_server
from tests.hl7v2.conftest import FIXTURES, fixture, personalised


class ServerRepository:
    """The repository interface intake needs, served by the running server's REST API."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.facilities = Remembered()

    async def transaction(self, bundle: dict[str, Any], contents: dict[str, bytes] | None = None) -> dict[str, Any]:
        # Over HTTP a Binary carries its bytes in `data`, as base64.
        for entry in bundle["entry"]:
            raw = (contents or {}).get(entry.get("fullUrl"))
            if raw is not None and "data" not in entry["resource"]:
                entry["resource"]["data"] = base64.b64encode(raw).decode("ascii")
        response = await self.client.post("", json=bundle)
        if response.status_code >= 400:
            raise FhirError(response.status_code, "processing", response.text)
        return response.json()

    async def find_current(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        response = await self.client.get(f"{resource_type}/{resource_id}")
        return response.json() if response.status_code == 200 else None

    async def find_by_identifier(self, resource_type: str, token: str) -> list[dict[str, Any]]:
        response = await self.client.get(resource_type, params={"identifier": token})
        return [e["resource"] for e in response.json().get("entry", [])]


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def ingest(fhir):
    """Run messages through intake against the server, in order; returns their results."""

    def send(*messages: bytes) -> list[Hl7Result]:
        async def main() -> list[Hl7Result]:
            async with httpx.AsyncClient(base_url=str(fhir.base_url), headers=dict(fhir.headers), timeout=60) as client:
                repository = ServerRepository(client)
                return [await handle_message(m, repository) for m in messages]

        return asyncio.run(main())

    return send


def search(fhir, query: str) -> list[dict]:
    response = fhir.get(query)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]


def msa(result: Hl7Result) -> tuple[str, str]:
    parsed = er7.parse(result.ack)
    return parsed.text("MSA-1"), parsed.text("MSA-2")


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.hl7") if not p.name.startswith("malformed")))
def test_every_fixture_is_stored_and_acknowledged(ingest, tag, name):
    [result] = ingest(personalised(name, tag))
    assert result.status == "AA", result.error and result.error.message
    assert msa(result) == ("AA", er7.parse(fixture(name)).text("MSH-10"))


def test_document_replacement_and_cancellation(ingest, fhir, tag):
    results = ingest(personalised("mdm_t02.hl7", tag), personalised("mdm_t10_replacement.hl7", tag))
    assert [r.status for r in results] == ["AA", "AA"]
    digits = str(int(tag, 16) % 10**9)
    first, second = (f"urn:oid:1.2.250.1.999.1.1.7.{digits}.2024030{n}" for n in (1, 2))
    [original] = search(fhir, f"DocumentReference?identifier={first}")
    [replacement] = search(fhir, f"DocumentReference?identifier={second}")
    assert (original["status"], replacement["status"]) == ("superseded", "current")
    [result] = ingest(personalised("mdm_t04_cancellation.hl7", tag))
    assert result.status == "AA"
    assert fhir.get(f"DocumentReference/{replacement['id']}").json()["status"] == "entered-in-error"


def test_raw_message_and_provenance_trace_what_was_produced(ingest, fhir, tag):
    message = personalised("oru_r01.hl7", tag)
    [result] = ingest(message)
    assert result.status == "AA"
    [patient] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|1800175{int(tag, 16) % 10**9}")
    observations = search(fhir, f"Observation?subject=Patient/{patient['id']}")
    assert len(observations) == 3
    provenances = search(fhir, f"Provenance?target=Observation/{observations[0]['id']}")
    assert len(provenances) == 1
    targets = {t["reference"] for t in provenances[0]["target"]}
    assert {f"Observation/{o['id']}" for o in observations} <= targets
    assert f"Patient/{patient['id']}" in targets
    raw = fhir.get(provenances[0]["entity"][0]["what"]["reference"], headers={"Accept": "application/fhir+json"}).json()
    assert raw["contentType"] == RAW_CONTENT_TYPE


def test_resend_produces_nothing_new_and_the_same_acknowledgement(ingest, fhir, tag):
    message = personalised("adt_a01.hl7", tag)
    first, again = ingest(message, message)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert (again.status, again.control_id, again.http_status) == ("AA", "ADT-A01", 200)
    assert msa(first) == msa(again) == ("AA", "ADT-A01")
    [patient] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042")
    assert patient["meta"]["versionId"] == "1"


def test_same_control_id_with_other_content_is_another_message(ingest, fhir, tag):
    admission = personalised("adt_a01.hl7", tag)
    update = admission.replace(b"12 rue des Lilas", b"99 avenue Foch")
    first, second = ingest(admission, update)
    assert (first.status, second.status, second.duplicate) == ("AA", "AA", False)
    [patient] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042")
    assert patient["address"][0]["line"][0] == "99 avenue Foch"


def test_malformed_message_is_refused_and_the_server_is_unharmed(ingest, fhir):
    [result] = ingest(fixture("malformed_no_msh.hl7"))
    assert (result.status, result.http_status) == ("AR", 400)
    assert er7.parse(result.ack).text("ERR-3.1") == "100"
    assert fhir.get("metadata").status_code == 200


def test_an_inapplicable_message_is_answered_ae_with_the_failing_field(ingest, tag):
    message = personalised("mdm_t02_unknown_patient.hl7", tag)
    without_id = b"\r".join(s for s in message.split(b"\r") if not s.startswith(b"TXA|"))
    [result] = ingest(without_id)
    assert (result.status, result.http_status) == ("AE", 422)
    ack = er7.parse(result.ack)
    assert (ack.text("MSA-1"), ack.text("ERR-2"), ack.text("ERR-2.3"), ack.text("ERR-3.1")) == ("AE", "TXA", "12", "101")


def test_unknown_patient_is_created(ingest, fhir, tag):
    [result] = ingest(personalised("mdm_t02_unknown_patient.hl7", tag))
    assert result.status == "AA"
    [patient] = search(fhir, "Patient?identifier=urn:oid:1.2.250.1.999.2.1.1|IPP5555")
    [document] = search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.2.1.8|DOC{tag}-UNK-0001")
    assert document["subject"]["reference"] == f"Patient/{patient['id']}"


def test_merge_keeps_the_merged_patients_documents_reachable(ingest, fhir, tag):
    registration = personalised("adt_a28.hl7", tag)
    merge = personalised("adt_a40.hl7", tag)
    results = ingest(registration, merge)
    assert [r.status for r in results] == ["AA", "AA"]
    [merged] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0099")
    assert merged["active"] is False
    assert merged["link"][0]["type"] == "replaced-by"
    survivor = fhir.get(merged["link"][0]["other"]["reference"]).json()
    assert {"type": "replaces", "other": {"reference": f"Patient/{merged['id']}"}} in survivor["link"]


def test_a_20_mb_document_message_is_stored_whole(ingest, fhir, tag):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * (15 * 1024 * 4)
    message = personalised("mdm_t02_unknown_patient.hl7", tag)
    message = message.replace(
        b"OBX|1|TX|11488-4^Note de consultation^LN||Consultation sans particularit\xc3\xa9.",
        b"OBX|1|ED|11488-4^Note de consultation^LN||^AP^PDF^Base64^" + base64.b64encode(pdf),
    )
    assert len(message) > 20 * 1024 * 1024
    [result] = ingest(message)
    assert result.status == "AA", result.error and result.error.message
    [document] = search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.2.1.8|DOC{tag}-UNK-0001")
    attachment = document["content"][0]["attachment"]
    assert (attachment["contentType"], attachment["size"]) == ("application/pdf", len(pdf))
    stored = fhir.get(attachment["url"], headers={"Accept": "application/pdf"})
    assert stored.content == pdf


def test_mllp_listener_with_intake_stores_before_acknowledging(fhir, tag):
    admission = personalised("adt_a01.hl7", tag)
    orders = personalised("rde_o11.hl7", tag)
    others = [personalised(name, uuid.uuid4().hex[:8]) for name in ("siu_s12.hl7", "oru_r01.hl7", "omp_o09.hl7")]

    async def main() -> None:
        async with httpx.AsyncClient(base_url=str(fhir.base_url), headers=dict(fhir.headers), timeout=60) as client:
            server = await start_mllp_server("127.0.0.1", 0, ack_handler(ServerRepository(client)))
            port = server.sockets[0].getsockname()[1]
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(frame(admission) + frame(orders) + frame(b"not an HL7 message"))
                await writer.drain()
                answers = [er7.parse(await read_frame(reader)) for _ in range(3)]
                writer.close()
                await writer.wait_closed()
                assert [(a.text("MSA-1"), a.text("MSA-2")) for a in answers] == [
                    ("AA", "ADT-A01"), ("AA", "RX0001"), ("AR", "")]
                # The ACK came after the transaction: the orders are already there.
                [patient] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042")
                assert len(search(fhir, f"MedicationRequest?subject=Patient/{patient['id']}")) == 2
                concurrent = await asyncio.gather(*(mllp_send("127.0.0.1", port, m) for m in others))
                assert [er7.parse(a).text("MSA-1") for a in concurrent] == ["AA", "AA", "AA"]
            finally:
                server.close()
                await server.wait_closed()

    asyncio.run(main())


def test_provenance_says_who_sent_what_and_when(ingest, fhir, tag):
    message = personalised("adt_a01.hl7", tag)
    [result] = ingest(message)
    assert (result.status, result.control_id, result.message_type, result.http_status) == ("AA", "ADT-A01", "ADT^A01", 200)
    [patient] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042")
    [provenance] = search(fhir, f"Provenance?target=Patient/{patient['id']}")
    # MSH-7 20240301103000, in the sender's time zone (Europe/Paris, mappings/hl7v2/defaults.json).
    assert provenance["recorded"] == "2024-03-01T10:30:00+01:00"
    assert provenance["activity"]["coding"] == [{"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": "A01"}]
    [agent] = provenance["agent"]
    assert agent["type"]["coding"] == [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]
    assert agent["who"] == {"identifier": {"system": "urn:hl7v2:application:CHEXEMPLE", "value": "PAM"}, "display": "PAM / CHEXEMPLE"}
    [entity] = provenance["entity"]
    assert entity["role"] == "source" and entity["what"]["display"] == "HL7 v2 ADT^A01 ADT-A01"
    raw = fhir.get(entity["what"]["reference"], headers={"Accept": "application/fhir+json"}).json()
    assert base64.b64decode(raw["data"]) == message


def test_each_message_keeps_its_own_raw_copy(ingest, fhir, tag):
    """Same sender and MSH-10, other content: two messages, two raw copies, neither overwritten."""
    first = personalised("adt_a01.hl7", tag)
    second = first.replace(b"12 rue des Lilas", b"99 avenue Foch")
    assert [r.status for r in ingest(first, second)] == ["AA", "AA"]
    [patient] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042")
    provenances = search(fhir, f"Provenance?target=Patient/{patient['id']}")
    raws = {base64.b64decode(fhir.get(p["entity"][0]["what"]["reference"], headers={"Accept": "application/fhir+json"}).json()["data"])
            for p in provenances}
    assert raws == {first, second}


def test_refusals_carry_the_control_id_and_the_error(ingest, tag):
    message = personalised("mdm_t02_unknown_patient.hl7", tag)
    without_id = b"\r".join(s for s in message.split(b"\r") if not s.startswith(b"TXA|"))
    [result] = ingest(without_id)
    assert result.control_id == er7.parse(message).text("MSH-10") and result.control_id
    assert (result.error.ack_code, result.error.code, result.http_status) == ("AE", "101", 422)


def test_provenance_of_a_message_without_sender(ingest, fhir, tag):
    message = personalised("adt_a01.hl7", tag).replace(b"MSH|^~\\&|PAM|CHEXEMPLE|", b"MSH|^~\\&|||", 1)
    [result] = ingest(message)
    assert result.status == "AA", result.error and result.error.message
    [patient] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042")
    [provenance] = search(fhir, f"Provenance?target=Patient/{patient['id']}")
    assert provenance["agent"][0]["who"] == {"identifier": {"system": "urn:hl7v2:application:unknown", "value": "unknown"},
                                             "display": "unknown sender"}


def test_sender_facility_is_quoted_into_the_provenance_system(ingest, fhir, tag):
    message = personalised("adt_a01.hl7", tag).replace(b"|PAM|CHEXEMPLE|", b"|PAM|CH/EXEMPLE LYON|", 1)
    [result] = ingest(message)
    assert result.status == "AA", result.error and result.error.message
    [patient] = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042")
    [provenance] = search(fhir, f"Provenance?target=Patient/{patient['id']}")
    assert provenance["agent"][0]["who"]["identifier"]["system"] == "urn:hl7v2:application:CH%2FEXEMPLE%20LYON"
