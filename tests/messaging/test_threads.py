"""Secure messaging (issue 15; docs/ACCESS-RULES.md "Secure messaging"), over HTTP with real tokens:
each rule allowed and refused, attachments, read state, unread counts and the e-mail to the patient.

A thread is a Communication with the `thread` category (its header); messages are Communications
with the `message` category, `partOf` the header. Professionals are named by IdNatPs, establishments
by FINESS, the patient as the subject.
"""

from __future__ import annotations

import base64
import email
import email.policy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.access.world import (FINESS, IDNATPS_SYSTEM, INS_NIA, World, bundle_ids, is_refusal, new_finess, new_ins,
                                open_world)
from tests.mhd.documents import PDF
from tests.server_process import ServerProcess

CATEGORY = "https://fhir-server.example.org/CodeSystem/secure-messaging"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
# FHIR_MESSAGE_ATTACHMENT_MAX_BYTES of the test servers (tests/server_process.py TEST_ENV).
LIMIT = 65536


def ps(world: World, name: str) -> dict[str, Any]:
    return {"identifier": {"system": IDNATPS_SYSTEM, "value": world.professionals[name].idnatps}}


def org(finess: str) -> dict[str, Any]:
    return {"identifier": {"system": FINESS, "value": finess}}


def patient_ref(patient_id: str) -> dict[str, Any]:
    return {"reference": f"Patient/{patient_id}"}


def category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": CATEGORY, "code": code}]}]


class Messaging:
    def __init__(self, world: World) -> None:
        self.world = world
        self.finess: dict[str, str] = {}

    def open_thread(self, caller: str, sender: dict[str, Any], *recipients: dict[str, Any],
                    patient: str | None = None, status: str = "in-progress") -> httpx.Response:
        return self.world.request(caller, "POST", "/Communication", json={
            "resourceType": "Communication", "status": status, "category": category("thread"),
            "subject": patient_ref(patient or self.world.patient_id), "topic": {"text": "Suivi"},
            "sender": sender, "recipient": list(recipients)})

    def thread(self, caller: str, sender: dict[str, Any], *recipients: dict[str, Any]) -> dict[str, Any]:
        response = self.open_thread(caller, sender, *recipients)
        assert response.status_code == 201, response.text
        return response.json()

    def send(self, caller: str, header: dict[str, Any], sender: dict[str, Any], *, text: str = "Bonjour",
             recipients: list[dict[str, Any]] | None = None, answers: str | None = None,
             attachments: list[dict[str, Any]] = ()) -> httpx.Response:  # type: ignore[assignment]
        people = [header["sender"], *header["recipient"]]
        payload: list[dict[str, Any]] = [{"contentString": text}, *({"contentAttachment": a} for a in attachments)]
        message: dict[str, Any] = {
            "resourceType": "Communication", "status": "completed", "category": category("message"),
            "subject": header["subject"], "partOf": [{"reference": f"Communication/{header['id']}"}],
            "sender": sender, "recipient": recipients if recipients is not None else [p for p in people if p != sender],
            "payload": payload}
        if answers:
            message["inResponseTo"] = [{"reference": f"Communication/{answers}"}]
        return self.world.request(caller, "POST", "/Communication", json=message)

    def sent(self, caller: str, header: dict[str, Any], sender: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        response = self.send(caller, header, sender, **kwargs)
        assert response.status_code == 201, response.text
        return response.json()

    def set_status(self, caller: str, header: dict[str, Any], status: str) -> httpx.Response:
        current = self.world.get("platform", f"/Communication/{header['id']}").json()
        return self.world.request(caller, "PUT", f"/Communication/{header['id']}", json={**current, "status": status})

    def binary(self, caller: str, header: dict[str, Any], content: bytes, content_type: str) -> httpx.Response:
        return self.world.request(caller, "POST", "/Binary", json={
            "resourceType": "Binary", "contentType": content_type, "data": base64.b64encode(content).decode(),
            "securityContext": {"reference": f"Communication/{header['id']}"}})

    def unread(self, caller: str) -> dict[str, int]:
        response = self.world.get(caller, f"/Patient/{self.world.patient_id}/$unread-messages")
        assert response.status_code == 200, response.text
        counts = {"total": next(p["valueInteger"] for p in response.json()["parameter"] if p["name"] == "unread")}
        for thread in (p for p in response.json()["parameter"] if p["name"] == "thread"):
            parts = {part["name"]: part for part in thread["part"]}
            counts[parts["header"]["valueReference"]["reference"].split("/")[1]] = parts["unread"]["valueInteger"]
        return counts


def says(response: httpx.Response, status: int, *words: str) -> bool:
    """The refusal a user sees: this status, an OperationOutcome, and these words in it."""
    body = response.json()
    text = " ".join(str(i.get("diagnostics", "")) for i in body.get("issue", []))
    return response.status_code == status and body.get("resourceType") == "OperationOutcome" \
        and all(w.lower() in text.lower() for w in words)


def dispense(world: World, patient_id: str, finess: str, handed_over: datetime) -> None:
    world.create({"resourceType": "MedicationDispense", "status": "completed",
                  "subject": patient_ref(patient_id),
                  "medicationCodeableConcept": {"text": "Amoxicilline 1 g"},
                  "performer": [{"actor": {"identifier": {"system": FINESS, "value": finess}}}],
                  "whenHandedOver": handed_over.strftime("%Y-%m-%dT%H:%M:%SZ")})


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    ins = new_ins()
    world.ins = ins
    world.patient_id = world.create({
        "resourceType": "Patient", "name": [{"family": f"Messagerie{world.unique}", "given": ["Lou"]}],
        "identifier": [{"system": INS_NIA, "value": ins}], "birthDate": "1970-01-01",
        "telecom": [{"system": "email", "value": f"lou-{world.unique}@example.org"}]})
    world.patient_caller("P", ins)
    world.patients["other"], other_ins = world.patient()
    world.patient_caller("Q", other_ins)
    for name in ("Doctor", "Nurse", "Authorised", "Blocked", "Writer"):
        world.practitioner(name)
    world.consent(world.patient_id, "permit", world.professionals["Authorised"])
    world.consent(world.patient_id, "deny", world.professionals["Blocked"])
    now = datetime.now(UTC)
    for name, dispensed in (("Pharmacy", now - timedelta(days=60)), ("OldPharmacy", now - timedelta(days=400)),
                            ("Hospital", None)):
        finess = new_finess()
        world.patients[f"finess:{name}"] = finess
        world.system(name, finess)
        if dispensed is not None:
            dispense(world, world.patient_id, finess, dispensed)
    yield world
    world.http.close()


@pytest.fixture(scope="module")
def messaging(world: World) -> Messaging:
    return Messaging(world)


def finess(world: World, name: str) -> str:
    return world.patients[f"finess:{name}"]


# -- who opens a thread ---------------------------------------------------------------------------

def test_a_professional_opens_a_thread_the_patient_replies_and_writes_again(world: World, messaging: Messaging) -> None:
    p = patient_ref(world.patient_id)
    header = messaging.thread("Doctor", ps(world, "Doctor"), p)
    first = messaging.sent("Doctor", header, ps(world, "Doctor"), text="Vos résultats sont arrivés")
    reply = messaging.sent("P", header, p, text="Merci", answers=first["id"])
    again = messaging.sent("P", header, p, text="Une autre question", answers=reply["id"])
    listed = world.get("P", f"/Communication?part-of=Communication/{header['id']}&_count=50").json()
    assert bundle_ids(listed, "Communication") == {first["id"], reply["id"], again["id"]}
    # The professional, not authorised on the record, reads the whole thread.
    listed = world.get("Doctor", f"/Communication?patient={world.patient_id}&_count=50").json()
    assert bundle_ids(listed, "Communication") == {header["id"], first["id"], reply["id"], again["id"]}


def test_an_establishment_opens_a_thread(world: World, messaging: Messaging) -> None:
    hospital = org(finess(world, "Hospital"))
    header = messaging.thread("Hospital", hospital, patient_ref(world.patient_id))
    messaging.sent("Hospital", header, hospital, text="Votre rendez-vous est confirmé")
    messaging.sent("P", header, patient_ref(world.patient_id), text="Merci")


def test_the_patient_does_not_open_a_thread_with_a_professional(world: World, messaging: Messaging) -> None:
    response = messaging.open_thread("P", patient_ref(world.patient_id), ps(world, "Doctor"))
    assert says(response, 403, "only a professional or an establishment opens a thread")


def test_the_patient_writes_first_to_a_pharmacy_that_dispensed_to_them_within_a_year(
        world: World, messaging: Messaging) -> None:
    p = patient_ref(world.patient_id)
    header = messaging.thread("P", p, org(finess(world, "Pharmacy")))
    messaging.sent("P", header, p, text="Mon ordonnance est-elle prête ?")
    assert world.get("Pharmacy", f"/Communication/{header['id']}").status_code == 200
    # Dispensed 400 days ago, or never: refused.
    assert says(messaging.open_thread("P", p, org(finess(world, "OldPharmacy"))), 403, "pharmacy")
    assert says(messaging.open_thread("P", p, org(new_finess())), 403, "pharmacy")


def test_no_patient_to_patient_messages(world: World, messaging: Messaging) -> None:
    p, q = patient_ref(world.patient_id), patient_ref(world.patients["other"])
    assert says(messaging.open_thread("P", p, q), 403, "patient-to-patient")
    assert says(messaging.open_thread("Doctor", ps(world, "Doctor"), p, q), 403, "patient-to-patient")
    header = messaging.thread("Doctor", ps(world, "Doctor"), p)
    assert says(messaging.send("P", header, p, recipients=[ps(world, "Doctor"), q]), 403, "patient-to-patient")
    # Another patient cannot write into this record's thread at all.
    assert is_refusal(messaging.send("Q", header, q))


def test_a_professional_the_patient_blocked_cannot_write(world: World, messaging: Messaging) -> None:
    p = patient_ref(world.patient_id)
    assert says(messaging.open_thread("Blocked", ps(world, "Blocked"), p), 403, "blocked")
    # A thread naming them, opened by someone else: they neither read it nor write in it.
    header = messaging.thread("Doctor", ps(world, "Doctor"), p, ps(world, "Blocked"))
    assert says(messaging.send("Blocked", header, ps(world, "Blocked")), 403, "blocked")
    assert is_refusal(world.get("Blocked", f"/Communication/{header['id']}"))


def test_a_professional_not_taking_part_neither_reads_nor_writes(world: World, messaging: Messaging) -> None:
    header = messaging.thread("Doctor", ps(world, "Doctor"), patient_ref(world.patient_id))
    # Authorised on the record, yet the thread is not theirs.
    assert world.get("Authorised", f"/Communication/{header['id']}").status_code == 404
    assert header["id"] not in bundle_ids(world.get("Authorised", f"/Communication?patient={world.patient_id}").json(),
                                          "Communication")
    assert says(messaging.send("Authorised", header, ps(world, "Authorised"),
                               recipients=[ps(world, "Doctor"), patient_ref(world.patient_id)]), 403, "no part")


def test_messages_stay_in_their_thread(world: World, messaging: Messaging) -> None:
    p = patient_ref(world.patient_id)
    header = messaging.thread("Doctor", ps(world, "Doctor"), p)
    other = messaging.thread("Nurse", ps(world, "Nurse"), p)
    elsewhere = messaging.sent("Nurse", other, ps(world, "Nurse"))
    assert says(messaging.send("P", header, p, answers=elsewhere["id"]), 422, "own thread")
    assert says(messaging.send("Doctor", header, p), 422, "sender")
    assert says(messaging.send("P", header, p, recipients=[ps(world, "Doctor"), ps(world, "Nurse")]), 422,
                "everyone in its thread")
    no_header = {**header, "id": elsewhere["id"]}
    assert says(messaging.send("P", no_header, p), 422, "thread header")
    # Sent messages are kept as sent: no rewriting, no deletion.
    mine = messaging.sent("P", header, p, text="Bonjour")
    changed = {**mine, "payload": [{"contentString": "Autre chose"}]}
    assert says(world.request("P", "PUT", f"/Communication/{mine['id']}", json=changed), 403, "not changed")
    assert says(world.request("Doctor", "DELETE", f"/Communication/{header['id']}"), 403, "kept")


# -- closing ------------------------------------------------------------------------------------------

def test_the_professional_closes_and_reopens_a_thread(world: World, messaging: Messaging) -> None:
    p = patient_ref(world.patient_id)
    header = messaging.thread("Doctor", ps(world, "Doctor"), p)
    assert says(messaging.set_status("P", header, "completed"), 403, "closes or reopens")
    assert messaging.set_status("Doctor", header, "completed").status_code == 200
    # The patient sees it closed and can no longer reply; nor can the professional write.
    assert world.get("P", f"/Communication/{header['id']}").json()["status"] == "completed"
    assert says(messaging.send("P", header, p), 409, "closed")
    assert says(messaging.send("Doctor", header, ps(world, "Doctor")), 409, "closed")
    assert messaging.set_status("Doctor", header, "in-progress").status_code == 200
    messaging.sent("P", header, p, text="Merci de la réouverture")
    assert says(messaging.set_status("Doctor", header, "stopped"), 422, "status")


def test_no_thread_in_an_opposed_or_closed_record(world: World, messaging: Messaging) -> None:
    for status in ("closed", "opposed"):
        patient_id, _ = world.patient(status=status)
        response = messaging.open_thread("Doctor", ps(world, "Doctor"), patient_ref(patient_id), patient=patient_id)
        assert is_refusal(response), response.text


# -- attachments ----------------------------------------------------------------------------------------

def test_attachments_are_binaries_of_the_thread_of_an_allowed_type_and_size(world: World, messaging: Messaging) -> None:
    p = patient_ref(world.patient_id)
    header = messaging.thread("Doctor", ps(world, "Doctor"), p)
    pdf = messaging.binary("Doctor", header, PDF, "application/pdf")
    assert pdf.status_code == 201, pdf.text
    png = messaging.binary("P", header, PNG, "image/png")
    assert png.status_code == 201, png.text
    message = messaging.sent("Doctor", header, ps(world, "Doctor"), attachments=[
        {"contentType": "application/pdf", "url": f"Binary/{pdf.json()['id']}", "title": "Ordonnance"}])
    messaging.sent("P", header, p, answers=message["id"],
                   attachments=[{"contentType": "image/png", "url": f"Binary/{png.json()['id']}"}])
    # Both sides read both files; a professional taking no part reads neither.
    for caller in ("P", "Doctor"):
        for binary in (pdf, png):
            assert world.get(caller, f"/Binary/{binary.json()['id']}").status_code == 200
    assert world.get("Authorised", f"/Binary/{pdf.json()['id']}").status_code == 404
    # Wrong type: bytes that are not what they claim, a type not allowed, a declaration not the Binary's.
    assert says(messaging.binary("P", header, PDF, "image/png"), 422, "signature")
    assert says(messaging.binary("P", header, b"hello", "text/plain"), 422, "application/pdf")
    assert says(messaging.send("Doctor", header, ps(world, "Doctor"), attachments=[
        {"contentType": "image/jpeg", "url": f"Binary/{pdf.json()['id']}"}]), 422, "declared")
    # Inline bytes, or a Binary of another thread, are not attachments of this one.
    assert says(messaging.send("Doctor", header, ps(world, "Doctor"), attachments=[
        {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode()}]), 422, "inline")
    other = messaging.thread("Nurse", ps(world, "Nurse"), p)
    assert says(messaging.send("Nurse", other, ps(world, "Nurse"), attachments=[
        {"contentType": "application/pdf", "url": f"Binary/{pdf.json()['id']}"}]), 422, "securityContext")
    # Too large: over FHIR_MESSAGE_ATTACHMENT_MAX_BYTES.
    big = PDF + b"\x00" * (LIMIT + 1 - len(PDF))
    assert says(messaging.binary("Doctor", header, big, "application/pdf"), 413, "at most")
    assert messaging.binary("Doctor", header, big[:LIMIT], "application/pdf").status_code == 201


# -- read state, unread counts, notification ---------------------------------------------------------

def test_read_state_and_unread_counts(world: World, messaging: Messaging) -> None:
    p = patient_ref(world.patient_id)
    header = messaging.thread("Nurse", ps(world, "Nurse"), p)
    before = messaging.unread("P")
    assert before[header["id"]] == 0
    first = messaging.sent("Nurse", header, ps(world, "Nurse"), text="Premier")
    second = messaging.sent("Nurse", header, ps(world, "Nurse"), text="Second")
    after = messaging.unread("P")
    assert after[header["id"]] == 2 and after["total"] == before["total"] + 2
    # Reading does not mark read: the recipient says so with $mark-read.
    assert "received" not in world.get("P", f"/Communication/{first['id']}").json()
    marked = world.request("P", "POST", f"/Communication/{first['id']}/$mark-read")
    assert marked.status_code == 200, marked.text
    received = marked.json()["received"]
    assert received and world.get("Nurse", f"/Communication/{first['id']}").json()["received"] == received
    assert messaging.unread("P")[header["id"]] == 1
    # The same count as a search of one thread (docs/ACCESS-RULES.md).
    unread = world.get("P", f"/Communication?part-of=Communication/{header['id']}"
                            f"&recipient=Patient/{world.patient_id}&received:missing=true").json()
    assert bundle_ids(unread, "Communication") == {second["id"]}
    # Marking again keeps the first time; the sender is no recipient; nobody sets it by hand.
    assert world.request("P", "POST", f"/Communication/{first['id']}/$mark-read").json()["received"] == received
    assert says(world.request("Nurse", "POST", f"/Communication/{second['id']}/$mark-read"), 403, "recipient")
    assert says(world.request("P", "POST", f"/Communication/{header['id']}/$mark-read"), 422, "message")
    hand_set = {**world.get("P", f"/Communication/{second['id']}").json(), "received": "2020-01-01T00:00:00Z",
                "payload": [{"contentString": "changed"}]}
    assert says(world.request("P", "PUT", f"/Communication/{second['id']}", json=hand_set), 403, "not changed")
    # The professional's unread: the patient's reply to them.
    reply = messaging.sent("P", header, p, text="Lu")
    assert messaging.unread("Nurse")[header["id"]] == 1
    assert world.request("Nurse", "POST", f"/Communication/{reply['id']}/$mark-read").status_code == 200
    assert messaging.unread("Nurse")[header["id"]] == 0


def test_a_new_message_is_emailed_to_the_patient(world: World, messaging: Messaging, server: ServerProcess) -> None:
    """Who wrote and when, never what; one e-mail per message, none for the thread header."""
    header = messaging.thread("Writer", ps(world, "Writer"), patient_ref(world.patient_id))
    messaging.sent("Writer", header, ps(world, "Writer"), text="Contenu confidentiel")
    spool: Path = server.data_dir / "mail-spool"
    address = f"lou-{world.unique}@example.org"
    writer = world.professionals["Writer"].idnatps

    def mails() -> list[str]:
        found = []
        for path in spool.glob("*.eml") if spool.exists() else []:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            if message["To"] == address and writer in body:
                found.append(f"{message['Subject']}\n{body}")
        return found
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not mails():
        time.sleep(0.2)
    [mail] = mails()
    assert "nouveau message" in mail.lower() and "Contenu confidentiel" not in mail
