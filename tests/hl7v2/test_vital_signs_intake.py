"""A vital sign in an ORU^R01 is stored as the vital sign it is (category vital-signs) and held to
its R4 profile like any other write: a weight in metres refuses the message (AE, HTTP 422) and
nothing of it is stored."""

import uuid

import httpx

from fhir_server.ingest.hl7v2 import er7
from tests.hl7v2.test_intake_store import personalised, search

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


def report_with_weight(tag: str, unit: bytes) -> bytes:
    weight = b"OBX|7|NM|29463-7^Poids^LN||72.5|" + unit + b"^" + unit + b"^UCUM||||||F|||20240301073000"
    return personalised("oru_r01.hl7", tag).rstrip(b"\r") + b"\r" + weight + b"\r"


def post(server, message: bytes) -> tuple[int, er7.Message]:
    response = server.post(f"{server.root_url}/ingest/hl7v2", content=message, headers=ER7, timeout=60)
    return response.status_code, er7.parse(response.content)


def test_a_weight_in_kg_is_stored_as_a_vital_sign(server, fhir):
    tag = uuid.uuid4().hex[:8]
    code, ack = post(server, report_with_weight(tag, b"kg"))
    assert (code, ack.text("MSA-1")) == (200, "AA")
    [weight] = search(fhir, f"Observation?code=http://loinc.org|29463-7&identifier:missing=true&subject:Patient.identifier=urn:oid:1.2.250.1.213.1.4.10|1800175{int(tag, 16) % 10**9}")
    assert weight["category"][0]["coding"][0]["code"] == "vital-signs"
    assert weight["valueQuantity"]["code"] == "kg"


def test_a_weight_in_metres_refuses_the_message(server, fhir):
    tag = uuid.uuid4().hex[:8]
    code, ack = post(server, report_with_weight(tag, b"m"))
    assert (code, ack.text("MSA-1"), ack.text("ERR-3.1")) == (422, "AE", "102")
    assert "ucum-bodyweight" in ack.text("ERR-8")
    patients = search(fhir, f"Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|1800175{int(tag, 16) % 10**9}")
    assert patients == []
