"""Appointment status changes (issue 15, policies/appointment-status.json) over FHIR and HL7 v2 SIU:
allowed changes are stored, others refused (422 OperationOutcome naming the transition; ACK AE
with ERR over MLLP) and nothing of the refused write is stored."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from fhir_server.ingest.hl7v2 import er7
from tests.access.world import Professional, World, new_finess, open_world
from tests.hl7v2.conftest import personalised
from tests.hl7v2.test_server_endpoints import send
from tests.ingest.record_status import hospital_headers

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def world(server: Any) -> World:
    world = open_world(server)
    world.patient_id, world.ins = world.patient(birth_date="1980-03-02")
    world.patient_caller("patient", world.ins)
    return world


def appointment(world: World, status: str, caller: str = "platform") -> httpx.Response:
    return world.request(caller, "POST", "/Appointment", json={
        "resourceType": "Appointment", "status": status, "start": "2030-01-10T09:00:00Z", "end": "2030-01-10T09:30:00Z",
        "participant": [{"actor": {"reference": f"Patient/{world.patient_id}"}, "status": "accepted"}]})


def set_status(world: World, appointment_id: str, status: str, caller: str = "platform") -> httpx.Response:
    current = world.get("platform", f"/Appointment/{appointment_id}").json()
    return world.request(caller, "PUT", f"/Appointment/{appointment_id}", json={**current, "status": status})


def refused(response: httpx.Response, before: str, after: str) -> None:
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert f"'{before}' -> '{after}'" in outcome["issue"][0]["diagnostics"], outcome
    assert outcome["issue"][0]["code"] == "business-rule"


@pytest.mark.parametrize("path", [
    ["proposed", "pending", "booked", "arrived", "fulfilled"],
    ["proposed", "booked", "checked-in", "fulfilled"],
    ["pending", "waitlist", "booked", "noshow", "entered-in-error"],
    ["booked", "cancelled"],
])
def test_allowed_paths_are_stored(world: World, path: list[str]) -> None:
    created = appointment(world, path[0])
    assert created.status_code == 201, created.text
    for status in path[1:]:
        response = set_status(world, created.json()["id"], status)
        assert response.status_code == 200, (status, response.text)
        assert response.json()["status"] == status


@pytest.mark.parametrize(("path", "refused_to"), [
    (["booked", "arrived", "fulfilled"], "proposed"),
    (["booked"], "fulfilled"),
    (["booked", "cancelled"], "booked"),
    (["booked", "noshow"], "arrived"),
    (["booked", "arrived", "fulfilled"], "cancelled"),
    (["pending"], "arrived"),
    (["booked", "entered-in-error"], "booked"),
])
def test_refused_transitions_change_nothing(world: World, path: list[str], refused_to: str) -> None:
    created = appointment(world, path[0]).json()
    for status in path[1:]:
        assert set_status(world, created["id"], status).status_code == 200
    before = world.get("platform", f"/Appointment/{created['id']}").json()
    refused(set_status(world, created["id"], refused_to), path[-1], refused_to)
    after = world.get("platform", f"/Appointment/{created['id']}").json()
    assert after["meta"]["versionId"] == before["meta"]["versionId"]


def test_patch_and_transaction_are_checked_too(world: World) -> None:
    created = appointment(world, "booked").json()
    assert set_status(world, created["id"], "cancelled").status_code == 200
    patch = [{"op": "replace", "path": "/status", "value": "booked"}]
    refused(world.request("platform", "PATCH", f"/Appointment/{created['id']}", json=patch, headers=JSON_PATCH),
            "cancelled", "booked")
    current = world.get("platform", f"/Appointment/{created['id']}").json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**current, "status": "arrived"},
         "request": {"method": "PUT", "url": f"Appointment/{created['id']}"}}]}
    refused(world.request("platform", "POST", "", json=bundle), "cancelled", "arrived")


def test_the_patient_asks_for_an_appointment_and_may_cancel_it(world: World) -> None:
    asked = appointment(world, "proposed", caller="patient")
    assert asked.status_code == 201, asked.text
    booked = appointment(world, "booked", caller="patient")
    assert booked.status_code == 422, booked.text
    assert "proposed" in booked.json()["issue"][0]["diagnostics"]
    refused(set_status(world, asked.json()["id"], "booked", caller="patient"), "proposed", "booked")
    cancelled = set_status(world, asked.json()["id"], "cancelled", caller="patient")
    assert cancelled.status_code == 200, cancelled.text
    # A professional's system books what the patient asked for; the patient cannot book it.
    again = appointment(world, "proposed", caller="patient").json()
    assert set_status(world, again["id"], "booked").status_code == 200


def _ack(message: bytes, server: Any) -> er7.Message:
    [ack] = send(server, message)
    return ack


def test_siu_cancelled_appointment_is_not_booked_again(server: Any, fhir: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    book = personalised("siu_s12.hl7", tag)
    assert _ack(book, server).text("MSA-1") == "AA"
    assert _ack(personalised("siu_s15.hl7", tag), server).text("MSA-1") == "AA"
    # A new message (its own control id) booking the cancelled appointment again.
    ack = _ack(book.replace(b"|SIU-S12|", b"|SIU-S12-again|"), server)
    assert ack.text("MSA-1") == "AE", ack
    assert "'cancelled' -> 'booked'" in ack.text("ERR-8"), ack.text("ERR-8")
    found = fhir.get("/Appointment", params={"identifier": f"RDV{tag}-1001"}).json()
    assert [e["resource"]["status"] for e in found.get("entry", [])] == ["cancelled"]


def test_siu_no_show_after_booking_is_stored(server: Any, fhir: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    book = personalised("siu_s12.hl7", tag).replace(b"RDV" + tag.encode() + b"-1001", b"RDV" + tag.encode() + b"-1003")
    assert _ack(book, server).text("MSA-1") == "AA"
    assert _ack(personalised("siu_s26.hl7", tag), server).text("MSA-1") == "AA"
    found = fhir.get("/Appointment", params={"identifier": f"RDV{tag}-1003"}).json()
    assert [e["resource"]["status"] for e in found.get("entry", [])] == ["noshow"]


def test_a_hospital_updates_its_own_siu_appointment(server: Any, fhir: httpx.Client) -> None:
    """A hospital's system (a token of its organisation, POST /ingest/hl7v2) books, then cancels,
    then may not book again: the appointment stays one resource, whatever the participant rule
    lets the hospital see of it."""
    tag = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=server.root_url, headers=hospital_headers(server), timeout=120.0) as hospital:
        def post(message: bytes) -> er7.Message:
            return er7.parse(hospital.post("/ingest/hl7v2", content=message, headers=ER7).content)
        book = personalised("siu_s12.hl7", tag)
        assert post(book).text("MSA-1") == "AA"
        assert post(personalised("siu_s15.hl7", tag)).text("MSA-1") == "AA"
        again = post(book.replace(b"|SIU-S12|", b"|SIU-S12-again|"))
    found = fhir.get("/Appointment", params={"identifier": f"RDV{tag}-1001"}).json()
    assert [e["resource"]["status"] for e in found.get("entry", [])] == ["cancelled"]
    assert again.text("MSA-1") == "AE" and "'cancelled' -> 'booked'" in again.text("ERR-8"), again


def test_the_practitioner_siu_names_sees_the_appointment(world: World, server: Any) -> None:
    """AIP-3 names the radiologist by IdNatPs: under the participant rule they see the appointment
    without any authorisation on the record; another professional does not."""
    tag = uuid.uuid4().hex[:8]
    assert _ack(personalised("siu_s12.hl7", tag), server).text("MSA-1") == "AA"
    radiologist = Professional("810000000001", "10", new_finess())
    world.tokens["radiologist"] = world.practitioner_token(radiologist)
    world.practitioner("other")
    seen = world.get("radiologist", "/Appointment", params={"identifier": f"RDV{tag}-1001"})
    assert seen.status_code == 200, seen.text
    assert [e["resource"]["status"] for e in seen.json().get("entry", [])] == ["booked"]
    hidden = world.get("other", "/Appointment", params={"identifier": f"RDV{tag}-1001"})
    assert hidden.status_code == 200 and hidden.json().get("entry", []) == [], hidden.text
