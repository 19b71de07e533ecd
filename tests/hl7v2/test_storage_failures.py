"""An HL7 v2 message is acknowledged AA only once stored: when the store fails under the server
or refuses the message, the sender gets AE with an ERR segment, and nothing of the message is
in the record afterwards, so sending it again stores it whole. ERR-3 tells the two apart: 207
(application internal error) when the server itself failed, the code of the content's fault
(205, duplicate key identifier) when the record refused it.

The store fails for real: its SQLite file is locked by another writer (the store's own write
fails while its reads still work), or its process is killed under the server. The refusal is a
conflict the store raises: two patients of the record already carry the message's INS.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import mllp_send
from tests.hl7v2.test_intake_store import personalised
from tests.server_process import InProcessServer, ServerProcess, dedicated_server

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}
INS = "urn:oid:1.2.250.1.213.1.4.10"
IPP = "urn:oid:1.2.250.1.999.1.1.1"


def mllp(server, message: bytes) -> er7.Message:  # type: ignore[no-untyped-def]
    return er7.parse(asyncio.run(mllp_send("127.0.0.1", server.mllp_port, message, timeout=60)))


def admission(tag: str) -> bytes:
    return personalised("adt_a01.hl7", tag)


def ins_of(tag: str) -> str:
    return f"1800175{int(tag, 16) % 10**9}"


def patients_with_ipp(fhir: httpx.Client, tag: str) -> list[dict]:
    found = fhir.get("/Patient", params={"identifier": f"{IPP}|IPP{tag}-0042"})
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def acknowledged_ae(ack: er7.Message, condition: str, reason: str) -> None:
    assert (ack.text("MSA-1"), ack.text("MSA-2")) == ("AE", "ADT-A01"), ack
    # ERR-3 the table 0357 code, ERR-4 severity, ERR-8 the reason.
    assert (ack.text("ERR-3.1"), ack.text("ERR-3.3"), ack.text("ERR-4")) == (condition, "HL70357", "E")
    assert reason in ack.text("ERR-8")


def nothing_stored(fhir: httpx.Client, tag: str) -> None:
    assert patients_with_ipp(fhir, tag) == []
    encounters = fhir.get("/Encounter", params={"identifier": f"urn:oid:1.2.250.1.999.1.1.2|V{tag}-001"}).json()
    assert encounters.get("entry", []) == []


def stored_once_resent(server, fhir: httpx.Client, tag: str) -> None:  # type: ignore[no-untyped-def]
    """The sender's retry is a new message for the server: it was not recorded as processed."""
    ack = mllp(server, admission(tag))
    assert ack.text("MSA-1") == "AA"
    [patient] = patients_with_ipp(fhir, tag)
    assert patient["meta"]["versionId"] == "1"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess | InProcessServer]:
    server = dedicated_server(tmp_path / "data").start()
    yield server
    server.stop()


def store_pid(server: ServerProcess | InProcessServer) -> int:
    return int((server.data_dir / "embedded-store.pid").read_text().split()[0])


# Each waits out the store's lock or death (about 30 s): make test-all.
@pytest.mark.heavy
def test_message_the_store_cannot_write_is_acknowledged_ae(own_server) -> None:  # type: ignore[no-untyped-def]
    """Another writer holds the store's database: the server's reads work, its transaction cannot begin."""
    tag = uuid.uuid4().hex[:8]
    lock = sqlite3.connect(own_server.data_dir / "store" / "fhir.db", timeout=1, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        ack = mllp(own_server, admission(tag))
    finally:
        lock.close()
    acknowledged_ae(ack, "207", "internal error")
    with own_server.client(timeout=30) as fhir:
        nothing_stored(fhir, tag)
        stored_once_resent(own_server, fhir, tag)


# Each waits out the store's lock or death (about 30 s): make test-all.
@pytest.mark.heavy
def test_message_posted_while_the_store_cannot_write_is_a_503(own_server) -> None:  # type: ignore[no-untyped-def]
    """Over HTTP the server's own failure is 503 with the AE: the sender sends it again later, never a 500."""
    tag = uuid.uuid4().hex[:8]
    lock = sqlite3.connect(own_server.data_dir / "store" / "fhir.db", timeout=1, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        response = own_server.post(f"{own_server.root_url}/ingest/hl7v2", content=admission(tag),
                                   headers={"Content-Type": "x-application/hl7-v2+er7"}, timeout=60)
    finally:
        lock.close()
    assert response.status_code == 503, response.text
    acknowledged_ae(er7.parse(response.content), "207", "internal error")
    with own_server.client(timeout=30) as fhir:
        nothing_stored(fhir, tag)


# Each waits out the store's lock or death (about 30 s): make test-all.
@pytest.mark.heavy
def test_message_arriving_after_the_store_died_is_acknowledged_ae(own_server) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    pid = store_pid(own_server)
    os.kill(pid, signal.SIGKILL)
    acknowledged_ae(mllp(own_server, admission(tag)), "207", "internal error")
    own_server.stop()
    # At once, while the killed store may still be a zombie: the restarted server owns the data
    # dir again and clears the dead store's pid file itself.
    own_server.start()
    with own_server.client(timeout=30) as fhir:
        nothing_stored(fhir, tag)
        stored_once_resent(own_server, fhir, tag)


def test_message_the_store_refuses_is_acknowledged_ae(server, fhir: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """Two patients of the record carry the message's INS: its conditional update of the patient
    is refused (412, more than one match), and so is the whole message."""
    tag = uuid.uuid4().hex[:8]
    twins = [fhir.post("/Patient", json={"resourceType": "Patient", "identifier": [{"system": INS, "value": ins_of(tag)}],
                                         "name": [{"family": f"Jumeau{n}"}]}).json() for n in (1, 2)]
    ack = mllp(server, admission(tag))
    acknowledged_ae(ack, "205", "not stored")
    assert "more than one" in ack.text("ERR-8")
    nothing_stored(fhir, tag)
    for twin in twins:
        current = fhir.get(f"/Patient/{twin['id']}").json()
        assert current["meta"]["versionId"] == "1" and current["name"] == twin["name"]
    over_http = server.post(f"{server.root_url}/ingest/hl7v2", content=admission(tag), headers=ER7, timeout=30)
    # The message's fault, not the server's: 422 (a failure of the server itself is 503).
    assert over_http.status_code == 422, over_http.text
    acknowledged_ae(er7.parse(over_http.content), "205", "not stored")
