"""End to end against the running server: MLLP port and POST /ingest/hl7v2, ACKs and stored resources."""

import asyncio
import base64
import uuid

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import frame, mllp_send, read_frame
from tests.hl7v2.conftest import fixture
from tests.hl7v2.test_intake_store import personalised, search

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


@pytest.fixture(scope="module")
def root(server) -> httpx.Client:
    with server.client(server.root_url, timeout=120) as client:
        yield client


def send(server, *messages: bytes) -> list[er7.Message]:
    """All messages on one MLLP connection, in order; their parsed ACKs."""

    async def main() -> list[er7.Message]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.mllp_port, limit=64 * 1024 * 1024)
        writer.write(b"".join(frame(m) for m in messages))
        await writer.drain()
        answers = [er7.parse(await read_frame(reader)) for _ in messages]
        writer.close()
        await writer.wait_closed()
        return answers

    return asyncio.run(main())


def status(ack: er7.Message) -> tuple[str, str]:
    return ack.text("MSA-1"), ack.text("MSA-2")


@pytest.mark.parametrize("name", [
    "mdm_t02.hl7", "oru_r01.hl7", "rde_o11.hl7", "omp_o09.hl7", "siu_s12.hl7", "siu_s26.hl7",
    "adt_a01.hl7", "adt_a03.hl7", "adt_a04.hl7", "adt_a08.hl7", "adt_a28.hl7", "adt_a31.hl7",
    "adt_a40.hl7", "mdm_t02_unknown_patient.hl7",
])
def test_each_message_type_over_mllp(server, name):
    [ack] = send(server, personalised(name, uuid.uuid4().hex[:8]))
    assert status(ack) == ("AA", er7.parse(fixture(name)).text("MSH-10"))


def test_document_lifecycle_over_mllp(server, fhir):
    tag = uuid.uuid4().hex[:8]
    digits = str(int(tag, 16) % 10**9)
    acks = send(server, *(personalised(n, tag) for n in ("mdm_t02.hl7", "mdm_t10_replacement.hl7", "mdm_t04_cancellation.hl7")))
    assert [status(a)[0] for a in acks] == ["AA", "AA", "AA"]
    [original] = search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.1.1.7.{digits}.20240301")
    [replacement] = search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.1.1.7.{digits}.20240302")
    assert (original["status"], replacement["status"]) == ("superseded", "entered-in-error")
    labels = {c["code"] for label in original["securityLabel"] for c in label["coding"]}
    assert {"INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"} <= labels


def test_resend_over_mllp_gives_the_same_ack_and_no_new_version(server, fhir):
    tag = uuid.uuid4().hex[:8]
    message = personalised("siu_s12.hl7", tag)
    first, again = send(server, message, message)
    assert status(first) == status(again) == ("AA", "SIU-S12")
    [appointment] = search(fhir, f"Appointment?identifier=RDV{tag}-1001")
    assert appointment["meta"]["versionId"] == "1"


def test_malformed_message_gets_ar_and_the_connection_goes_on(server):
    tag = uuid.uuid4().hex[:8]
    bad, good = send(server, fixture("malformed_no_msh.hl7"), personalised("adt_a28.hl7", tag))
    assert (bad.text("MSA-1"), bad.text("ERR-3.1")) == ("AR", "100")
    assert status(good) == ("AA", "ADT-A28")


def test_broken_framing_does_not_harm_the_listener(server):
    async def main() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", server.mllp_port)
        writer.write(b"garbage\x0bMSH|^~\\&|half a message")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    asyncio.run(main())
    [ack] = send(server, personalised("adt_a31.hl7", uuid.uuid4().hex[:8]))
    assert status(ack) == ("AA", "ADT-A31")


def test_a_20_mb_message_over_mllp(server, fhir):
    tag = uuid.uuid4().hex[:8]
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * (15 * 1024 * 4)
    message = personalised("mdm_t02_unknown_patient.hl7", tag).replace(
        b"OBX|1|TX|11488-4^Note de consultation^LN||Consultation sans particularit\xc3\xa9.",
        b"OBX|1|ED|11488-4^Note de consultation^LN||^AP^PDF^Base64^" + base64.b64encode(pdf),
    )
    assert len(message) > 20 * 1024 * 1024
    answer = asyncio.run(mllp_send("127.0.0.1", server.mllp_port, message))
    assert status(er7.parse(answer)) == ("AA", "MDM0900")
    [document] = search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.2.1.8|DOC{tag}-UNK-0001")
    assert document["content"][0]["attachment"]["size"] == len(pdf)


def test_http_intake_answers_with_the_ack(root, fhir):
    tag = uuid.uuid4().hex[:8]
    accepted = root.post("/ingest/hl7v2", content=personalised("rde_o11.hl7", tag), headers=ER7)
    assert accepted.status_code == 200
    assert status(er7.parse(accepted.content)) == ("AA", "RX0001")
    requests = search(fhir, f"MedicationRequest?identifier=PRESC{tag}-1-2")
    assert requests[0]["groupIdentifier"]["value"] == f"PRESC{tag}-1"
    refused = root.post("/ingest/hl7v2", content=fixture("malformed_no_msh.hl7"), headers=ER7)
    assert refused.status_code == 400
    assert er7.parse(refused.content).text("MSA-1") == "AR"
    without_identifiers = b"\r".join(
        b"PID|||||SANS^IDENTIFIANT" if s.startswith(b"PID|") else s for s in personalised("adt_a01.hl7", tag).split(b"\r")
    )
    inapplicable = root.post("/ingest/hl7v2", content=without_identifiers, headers=ER7)
    assert inapplicable.status_code == 422
    error = er7.parse(inapplicable.content)
    assert (error.text("MSA-1"), error.text("ERR-2"), error.text("ERR-2.3"), error.text("ERR-3.1")) == ("AE", "PID", "3", "101")


def test_message_with_empty_encoding_characters_gets_an_ack(root):
    """'MSH||' used to raise inside the ACK builder: no answer over MLLP, a 500 over HTTP."""
    message = b"MSH||APP|FAC|||20240301||ADT^A01|EMPTY-MSH2|P|2.5\rPID|1\r"
    response = root.post("/ingest/hl7v2", content=message, headers=ER7)
    assert response.status_code != 500, response.text
    ack = er7.parse(response.content)
    assert ack.text("MSA-2") == "EMPTY-MSH2" and ack.text("MSA-1") in ("AA", "AE", "AR")


def test_the_raw_message_and_its_document_are_stored_byte_for_byte(server, fhir):
    """Both Binaries are stored from the bytes the adapter holds (the message as received, the
    document as decoded from OBX-5), not decoded again from base64: what is read back is them."""
    tag = uuid.uuid4().hex[:8]
    message = personalised("mdm_t02.hl7", tag)
    [ack] = send(server, message)
    assert status(ack)[0] == "AA"
    digits = str(int(tag, 16) % 10**9)
    [document] = search(fhir, f"DocumentReference?identifier=urn:oid:1.2.250.1.999.1.1.7.{digits}.20240301")
    attachment = document["content"][0]["attachment"]
    carried = fhir.get(attachment["url"], headers={"Accept": "application/fhir+json"}).json()
    assert len(base64.b64decode(carried["data"])) == attachment["size"]
    [provenance] = search(fhir, f"Provenance?target=DocumentReference/{document['id']}")
    raw = fhir.get(provenance["entity"][0]["what"]["reference"], headers={"Accept": "application/fhir+json"}).json()
    assert base64.b64decode(raw["data"]) == message
