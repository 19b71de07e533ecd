"""Dispensations (RDS^O13) and vaccinations (VXU^V04) against the running server, over MLLP and
POST /ingest/hl7v2: the ACK comes after storage, the record holds what a pharmacist or a
vaccinator sent, and a message the adapter cannot take is refused with nothing stored."""

import uuid

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from tests.hl7v2.test_intake_store import personalised, search
from tests.hl7v2.test_server_endpoints import send, status

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


@pytest.fixture(scope="module")
def root(server) -> httpx.Client:
    with server.client(server.root_url, timeout=120) as client:
        yield client


def message(name: str, tag: str) -> bytes:
    """A fixture whose patient, orders, dispenses and vaccinations belong to this test only."""
    return personalised(name, tag).replace(b"DISP-", f"DISP{tag}-".encode()).replace(b"VAC-", f"VAC{tag}-".encode())


def post(root: httpx.Client, data: bytes) -> tuple[int, er7.Message]:
    response = root.post("/ingest/hl7v2", content=data, headers=ER7)
    return response.status_code, er7.parse(response.content)


def with_version(data: bytes, version: str) -> bytes:
    msh, rest = data.split(b"\r", 1)
    fields = msh.split(b"|")
    fields[11] = version.encode()
    return b"|".join(fields) + b"\r" + rest


def test_dispense_over_mllp_stores_dispense_medication_and_patient(server, fhir):
    tag = uuid.uuid4().hex[:8]
    [ack] = send(server, message("rds_o13.hl7", tag))
    assert status(ack) == ("AA", "DISP0001")
    [dispense] = search(fhir, f"MedicationDispense?identifier=DISP{tag}-9001")
    assert dispense["status"] == "completed"
    assert dispense["whenHandedOver"] == "2024-03-05T14:25:00+01:00"
    assert dispense["substitution"]["wasSubstituted"] is False
    assert dispense["authorizingPrescription"][0]["identifier"]["value"] == f"PRESC{tag}-1-1"
    # The prescription is named by its number: the dispenses of a prescription are found by it.
    by_prescription = search(fhir, f"MedicationDispense?prescription:identifier=urn:hl7v2:assigning-authority:CHEXEMPLE|PRESC{tag}-1-1")
    assert [d["id"] for d in by_prescription] == [dispense["id"]]
    medication = fhir.get(dispense["medicationReference"]["reference"]).json()
    codes = {(c["system"], c["code"]) for c in medication["code"]["coding"]}
    assert {("urn:oid:1.2.250.1.213.2.3.1", "3400936403114"), ("http://www.whocc.no/atc", "N02BE01")} <= codes
    assert medication["batch"]["lotNumber"] == "LOT4521A"
    patient = fhir.get(dispense["subject"]["reference"]).json()
    assert {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": patient["identifier"][0]["value"]}.items() <= patient["identifier"][0].items()
    # The patient's dispensations are found from the patient, both orders of the message.
    found = search(fhir, f"MedicationDispense?patient={dispense['subject']['reference']}")
    assert sorted(d["identifier"][0]["value"] for d in found) == [f"DISP{tag}-9001", f"DISP{tag}-9002"]
    generic = next(d for d in found if d["identifier"][0]["value"].endswith("9002"))
    assert generic["substitution"]["wasSubstituted"] is True


def test_vaccination_over_http_then_its_deletion(root, fhir):
    tag = uuid.uuid4().hex[:8]
    code, ack = post(root, message("vxu_v04.hl7", tag))
    assert (code, status(ack)) == (200, ("AA", "VAC0001"))
    [flu] = search(fhir, f"Immunization?identifier=VAC{tag}-2024-0001")
    assert flu["status"] == "completed" and flu["primarySource"] is True
    assert {"system": "http://hl7.org/fhir/sid/cvx", "code": "141", "display": "Influenza, seasonal, injectable"} in flu["vaccineCode"]["coding"]
    assert flu["lotNumber"] == "FLU2024X7" and flu["doseQuantity"]["code"] == "mL"
    [historical] = search(fhir, f"Immunization?identifier=VAC{tag}-2019-0042")
    assert historical["primarySource"] is False and "doseQuantity" not in historical
    assert search(fhir, f"Immunization?patient={flu['patient']['reference']}&vaccine-code=http://hl7.org/fhir/sid/cvx|141") == [flu]
    code, ack = post(root, message("vxu_v04_v28.hl7", tag))
    assert (code, status(ack)) == (200, ("AA", "VAC0003"))
    [deleted] = search(fhir, f"Immunization?identifier=VAC{tag}-2024-0001")
    assert (deleted["id"], deleted["status"]) == (flu["id"], "entered-in-error")


def test_refused_vaccination_is_recorded_as_not_done(server, fhir):
    tag = uuid.uuid4().hex[:8]
    [ack] = send(server, message("vxu_v04_refused.hl7", tag))
    assert status(ack) == ("AA", "VAC0002")
    [refused] = search(fhir, f"Immunization?identifier=VAC{tag}-2024-0003")
    assert refused["status"] == "not-done"
    assert refused["statusReason"]["coding"][0]["display"] == "Parental decision"


@pytest.mark.parametrize("version", ["2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"])
def test_versions_2_5_to_2_8_are_taken(server, fhir, version):
    tag = uuid.uuid4().hex[:8]
    acks = send(server, with_version(message("rds_o13_v28.hl7", tag), version), with_version(message("vxu_v04_refused.hl7", tag), version))
    assert [a.text("MSA-1") for a in acks] == ["AA", "AA"]
    assert acks[0].text("MSH-12") == version
    assert len(search(fhir, f"MedicationDispense?identifier=DISP{tag}-9003")) == 1


@pytest.mark.parametrize("version", ["2.3", "2.4", "2.9"])
def test_other_versions_are_refused_with_nothing_stored(root, fhir, version):
    tag = uuid.uuid4().hex[:8]
    response = root.post("/ingest/hl7v2", content=with_version(message("vxu_v04_refused.hl7", tag), version), headers=ER7)
    assert (response.status_code, er7.parse(response.content).text("MSA-1")) == (400, "AR")
    # ERR-3 from v2.5 on, ERR-1 before: either way table 0357's 203 "Unsupported version id".
    [err] = [line for line in response.content.split(b"\r") if line.startswith(b"ERR|")]
    assert b"203" in err and b"Unsupported version id" in err
    assert search(fhir, f"Immunization?identifier=VAC{tag}-2024-0003") == []


@pytest.mark.parametrize(("name", "segment", "field", "location"), [
    ("vxu_v04.hl7", b"RXA", 5, ("RXA", "5")),
    ("vxu_v04.hl7", b"RXA", 3, ("RXA", "3")),
    ("rds_o13.hl7", b"RXD", 2, ("RXD", "2")),
    ("rds_o13.hl7", b"RXD", 3, ("RXD", "3")),
])
def test_a_missing_required_field_is_ae_with_err_and_nothing_stored(root, fhir, name, segment, field, location):
    tag = uuid.uuid4().hex[:8]
    lines = message(name, tag).split(b"\r")
    # Blank the field in the message's last such segment: the orders before it must not be stored either.
    index = max(i for i, line in enumerate(lines) if line.startswith(segment + b"|"))
    fields = lines[index].split(b"|")
    fields[field] = b""
    lines[index] = b"|".join(fields)
    code, ack = post(root, b"\r".join(lines))
    assert (code, ack.text("MSA-1"), ack.text("ERR-3.1")) == (422, "AE", "101")
    assert (ack.text("ERR-2"), ack.text("ERR-2.3")) == location
    kind, prefix = ("Immunization", "VAC") if segment == b"RXA" else ("MedicationDispense", "DISP")
    first = f"{prefix}{tag}-2024-0001" if kind == "Immunization" else f"{prefix}{tag}-9001"
    assert search(fhir, f"{kind}?identifier={first}") == []


def test_an_unknown_vaccination_event_is_ar(root):
    code, ack = post(root, message("vxu_v04.hl7", uuid.uuid4().hex[:8]).replace(b"VXU^V04^VXU_V04", b"VXU^V99^VXU_V04"))
    assert (code, ack.text("MSA-1"), ack.text("ERR-3.1")) == (400, "AR", "201")
