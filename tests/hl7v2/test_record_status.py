"""HL7 v2 from a hospital for a record that refuses deposits (Patient record-status `opposed` or
`closed`, issue 12): over HTTP and MLLP, the ACK is AR with an ERR whose text says the record
takes no deposit, and nothing of the message is stored (not even its trace: raw message and
Provenance)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.hl7v2.ack import read_header
from fhir_server.ingest.hl7v2.convert import convert_message
from fhir_server.ingest.hl7v2.intake import provenance_id
from tests.hl7v2.test_intake_store import personalised
from tests.hl7v2.test_server_endpoints import send
from tests.ingest.record_status import hospital_root  # noqa: F401 (fixture)
from tests.ingest.record_status import REFUSAL, REFUSING, RECORD_STATUS, refusing_patient, total

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


def _for_refusing_record(fhir: httpx.Client, name: str, status: str) -> tuple[bytes, dict]:
    """The fixture `name` made this test's own, and its patient stored with a record that refuses deposits."""
    message = personalised(name, uuid.uuid4().hex[:8])
    [entry] = [e for e in convert_message(message).bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    return message, refusing_patient(fhir, entry["resource"], status)


def _refused(ack: er7.Message, status: str) -> None:
    assert ack.text("MSA-1") == "AR", ack
    assert REFUSAL[status] in ack.text("ERR-8"), ack.text("ERR-8")


def _nothing_stored(fhir: httpx.Client, message: bytes, patient: dict) -> None:
    assert total(fhir, "/DocumentReference", subject=f"Patient/{patient['id']}") == 0
    trace = fhir.get(f"/Provenance/{provenance_id(read_header(message), message)}")
    assert trace.status_code == 404, trace.text


@pytest.mark.parametrize("status", REFUSING)
@pytest.mark.parametrize("name", ["mdm_t02.hl7", "oru_r01.hl7"])
def test_document_over_http_is_refused(hospital_root: httpx.Client, fhir: httpx.Client, name: str, status: str) -> None:
    message, patient = _for_refusing_record(fhir, name, status)
    response = hospital_root.post("/ingest/hl7v2", content=message, headers=ER7)
    assert response.status_code == 403, response.text
    _refused(er7.parse(response.content), status)
    _nothing_stored(fhir, message, patient)


@pytest.mark.parametrize("status", REFUSING)
def test_document_over_mllp_is_refused(server, fhir: httpx.Client, status: str) -> None:  # type: ignore[no-untyped-def]
    message, patient = _for_refusing_record(fhir, "mdm_t02.hl7", status)
    [ack] = send(server, message)
    _refused(ack, status)
    _nothing_stored(fhir, message, patient)


@pytest.mark.parametrize("status", REFUSING)
def test_patient_update_does_not_reopen_the_record(hospital_root: httpx.Client, fhir: httpx.Client, status: str) -> None:
    """An ADT update of the patient is refused too: it would otherwise replace the Patient without
    the status the patient chose, and the record would take deposits again."""
    message, patient = _for_refusing_record(fhir, "adt_a08.hl7", status)
    response = hospital_root.post("/ingest/hl7v2", content=message, headers=ER7)
    ack = er7.parse(response.content)
    # Refused when the update looks for the patient in a record the hospital may no longer open.
    assert (ack.text("MSA-1"), response.status_code) == ("AR", 403), response.content
    assert f"shared record is {status}" in ack.text("ERR-8"), ack.text("ERR-8")
    current = fhir.get(f"/Patient/{patient['id']}").json()
    assert {"url": RECORD_STATUS, "valueCode": status} in current.get("extension", [])
    assert current["meta"]["versionId"] == patient["meta"]["versionId"]


def test_patient_update_keeps_what_the_patient_chose(hospital_root: httpx.Client, fhir: httpx.Client) -> None:
    """In an open record, an ADT update changes what PID states and keeps the record's status and
    the médecin traitant the patient designated, which no message states."""
    message = personalised("adt_a08.hl7", uuid.uuid4().hex[:8])
    [entry] = [e for e in convert_message(message).bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    doctor = fhir.post("/Practitioner", json={"resourceType": "Practitioner", "name": [{"family": "Traitant"}]}).json()
    chosen = {**entry["resource"], "name": [{"family": "AVANT"}],
              "generalPractitioner": [{"reference": f"Practitioner/{doctor['id']}"}],
              "extension": [{"url": RECORD_STATUS, "valueCode": "active"}]}
    stored = fhir.post("/Patient", json=chosen).json()
    response = hospital_root.post("/ingest/hl7v2", content=message, headers=ER7)
    assert er7.parse(response.content).text("MSA-1") == "AA", response.content
    current = fhir.get(f"/Patient/{stored['id']}").json()
    assert current["meta"]["versionId"] == "2"
    assert current["name"] == entry["resource"]["name"]
    assert current["generalPractitioner"] == [{"reference": f"Practitioner/{doctor['id']}"}]
    assert {"url": RECORD_STATUS, "valueCode": "active"} in current["extension"]
