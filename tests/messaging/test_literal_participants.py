"""Participants named by id (docs/ACCESS-RULES.md "The participant rule"): a thread naming a
professional as `Practitioner/{id}`, `PractitionerRole/{id}` or a contained Practitioner, or an
establishment as `Organization/{id}`, is theirs as if it named their IdNatPs (FINESS): they read it,
write in it, close it and mark its messages read; nobody else sees it. The reference is resolved when
the thread is written, in its transaction, a transaction's own urn:uuid entries included.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.access.world import IDNATPS_SYSTEM, FINESS, World, bundle_ids, is_refusal, new_finess, open_world
from tests.messaging.test_threads import Messaging, category, org, patient_ref, says
from tests.server_process import ServerProcess


def practitioner(world: World, name: str) -> dict[str, Any]:
    return {"reference": f"Practitioner/{world.professionals[name].practitioner_id}"}


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.patient_id, world.ins = world.patient()
    world.patient_caller("P", world.ins)
    for name in ("Doctor", "Nurse", "Colleague", "Stranger", "Contained", "Newcomer"):
        world.practitioner(name)
    # A professional of the same establishment as the Nurse's role, in no thread.
    world.practitioner("Nurse-colleague", organization=world.professionals["Nurse"].organization)
    world.patients["finess:Hospital"] = new_finess()
    world.system("Hospital", world.patients["finess:Hospital"])
    world.patients["finess:Clinic"] = new_finess()
    world.system("Clinic", world.patients["finess:Clinic"])
    world.patients["org:Clinic"] = world.create({
        "resourceType": "Organization", "name": f"Clinique {world.unique}",
        "identifier": [{"system": FINESS, "value": world.patients["finess:Clinic"]}]})
    nurse_org = world.create({"resourceType": "Organization", "name": f"Centre {world.unique}",
                              "identifier": [{"system": FINESS, "value": world.professionals["Nurse"].organization}]})
    world.patients["role:Nurse"] = world.create({
        "resourceType": "PractitionerRole", "practitioner": practitioner(world, "Nurse"),
        "organization": {"reference": f"Organization/{nurse_org}"}})
    yield world
    world.http.close()


@pytest.fixture(scope="module")
def messaging(world: World) -> Messaging:
    return Messaging(world)


def threads_of(world: World, caller: str) -> set[str]:
    response = world.get(caller, f"/Communication?patient={world.patient_id}&_count=50")
    if is_refusal(response):
        return set()
    assert response.status_code == 200, response.text
    return bundle_ids(response.json(), "Communication")


def test_a_professional_named_by_practitioner_id_reads_writes_and_closes_the_thread(
        world: World, messaging: Messaging) -> None:
    hospital, doctor = org(world.patients["finess:Hospital"]), practitioner(world, "Doctor")
    p = patient_ref(world.patient_id)
    header = messaging.thread("Hospital", hospital, p, doctor)
    first = messaging.sent("Hospital", header, hospital, text="Compte rendu disponible")
    # The Doctor, not authorised on the record, reads the thread and its messages.
    assert world.get("Doctor", f"/Communication/{header['id']}").status_code == 200
    assert {header["id"], first["id"]} <= threads_of(world, "Doctor")
    # They mark the message addressed to them read, and it is counted as theirs until then.
    assert messaging.unread("Doctor")[header["id"]] == 1
    read = world.request("Doctor", "POST", f"/Communication/{first['id']}/$mark-read")
    assert read.status_code == 200, read.text
    assert read.json()["received"]
    # They write in it, named by id as the thread names them, or by their IdNatPs.
    reply = messaging.sent("Doctor", header, doctor, text="Bien reçu",
                           recipients=[hospital, p])
    # The first message was read (by the Doctor, its first recipient to read it): one unread for the patient.
    assert messaging.unread("P")[header["id"]] == 1
    assert messaging.unread("Doctor")[header["id"]] == 0
    # They close it; the patient sees it closed and can no longer write.
    closed = messaging.set_status("Doctor", header, "completed")
    assert closed.status_code == 200, closed.text
    assert world.get("P", f"/Communication/{header['id']}").json()["status"] == "completed"
    assert says(messaging.send("P", header, p), 409, "closed")
    # Another professional, authorised or not, sees nothing of it and cannot write in it.
    assert threads_of(world, "Stranger") & {header["id"], first["id"], reply["id"]} == set()
    assert world.get("Stranger", f"/Communication/{header['id']}").status_code in (403, 404)
    assert messaging.set_status("Stranger", header, "in-progress").status_code in (403, 404)


def test_a_thread_the_platform_opens_with_a_practitioner_reference(world: World, messaging: Messaging) -> None:
    header = world.create({"resourceType": "Communication", "status": "in-progress", "category": category("thread"),
                           "subject": patient_ref(world.patient_id), "topic": {"text": "Rappel"},
                           "sender": practitioner(world, "Colleague"), "recipient": [patient_ref(world.patient_id)]})
    assert world.get("Colleague", f"/Communication/{header}").status_code == 200
    assert header not in threads_of(world, "Stranger")


def test_a_professional_named_by_their_role(world: World, messaging: Messaging) -> None:
    """A PractitionerRole names its practitioner, not every professional of its organisation."""
    role = {"reference": f"PractitionerRole/{world.patients['role:Nurse']}"}
    header = messaging.thread("Hospital", org(world.patients["finess:Hospital"]), patient_ref(world.patient_id), role)
    assert world.get("Nurse", f"/Communication/{header['id']}").status_code == 200
    messaging.sent("Nurse", header, role, text="Je passe demain")
    assert header["id"] not in threads_of(world, "Nurse-colleague")
    assert header["id"] not in threads_of(world, "Stranger")


def test_an_establishment_named_by_organization_id(world: World, messaging: Messaging) -> None:
    clinic = {"reference": f"Organization/{world.patients['org:Clinic']}"}
    doctor = practitioner(world, "Doctor")
    header = messaging.thread("Doctor", doctor, patient_ref(world.patient_id), clinic)
    assert world.get("Clinic", f"/Communication/{header['id']}").status_code == 200
    messaging.sent("Clinic", header, clinic, text="Dossier reçu")
    closed = messaging.set_status("Clinic", header, "completed")
    assert closed.status_code == 200, closed.text
    assert header["id"] not in threads_of(world, "Hospital")


def test_the_patient_writes_first_to_a_pharmacy_its_dispense_names_by_id(world: World, messaging: Messaging) -> None:
    clinic = {"reference": f"Organization/{world.patients['org:Clinic']}"}
    world.create({"resourceType": "MedicationDispense", "status": "completed", "subject": patient_ref(world.patient_id),
                  "medicationCodeableConcept": {"text": "Paracétamol 1 g"}, "performer": [{"actor": clinic}],
                  "whenHandedOver": (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    p = patient_ref(world.patient_id)
    header = messaging.thread("P", p, org(world.patients["finess:Clinic"]))
    assert world.get("Clinic", f"/Communication/{header['id']}").status_code == 200


def test_a_contained_practitioner(world: World, messaging: Messaging) -> None:
    contained = world.professionals["Contained"]
    response = world.request("Hospital", "POST", "/Communication", json={
        "resourceType": "Communication", "status": "in-progress", "category": category("thread"),
        "contained": [{"resourceType": "Practitioner", "id": "dr",
                       "identifier": [{"system": IDNATPS_SYSTEM, "value": contained.idnatps}]}],
        "subject": patient_ref(world.patient_id), "topic": {"text": "Suivi"},
        "sender": org(world.patients["finess:Hospital"]),
        "recipient": [patient_ref(world.patient_id), {"reference": "#dr"}]})
    assert response.status_code == 201, response.text
    assert world.get("Contained", f"/Communication/{response.json()['id']}").status_code == 200
    assert response.json()["id"] not in threads_of(world, "Stranger")


def test_a_practitioner_without_idnatps_names_nobody(world: World, messaging: Messaging) -> None:
    nameless = world.create({"resourceType": "Practitioner", "name": [{"family": f"Anonyme{world.unique}"}]})
    response = messaging.open_thread("Hospital", org(world.patients["finess:Hospital"]), patient_ref(world.patient_id),
                                     {"reference": f"Practitioner/{nameless}"})
    assert says(response, 422, "IdNatPs")
    assert says(messaging.open_thread("Hospital", org(world.patients["finess:Hospital"]), patient_ref(world.patient_id),
                                      {"reference": f"Practitioner/{uuid.uuid4()}"}), 422, "IdNatPs")


def test_a_transaction_creating_the_practitioner_and_the_thread(world: World) -> None:
    """The thread comes first in the Bundle and the Practitioner is a PUT: it is still written first."""
    newcomer = world.professionals["Newcomer"]
    practitioner_id, practitioner_url = str(uuid.uuid4()), f"urn:uuid:{uuid.uuid4()}"
    hospital = org(world.patients["finess:Hospital"])
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "Communication"},
         "resource": {"resourceType": "Communication", "status": "in-progress", "category": category("thread"),
                      "subject": patient_ref(world.patient_id), "topic": {"text": "Arrivée"},
                      "sender": hospital,
                      "recipient": [patient_ref(world.patient_id), {"reference": practitioner_url}]}},
        {"fullUrl": practitioner_url, "request": {"method": "PUT", "url": f"Practitioner/{practitioner_id}"},
         "resource": {"resourceType": "Practitioner", "id": practitioner_id, "name": [{"family": "Nouveau"}],
                      "identifier": [{"system": IDNATPS_SYSTEM, "value": newcomer.idnatps}]}}]}
    response = world.request("Hospital", "POST", "", json=bundle)
    assert response.status_code == 200, response.text
    header = response.json()["entry"][0]["response"]["location"].split("/")[1]
    thread = world.get("Newcomer", f"/Communication/{header}")
    assert thread.status_code == 200, thread.text
    assert thread.json()["recipient"][1] == {"reference": f"Practitioner/{practitioner_id}"}
    assert header not in threads_of(world, "Stranger")


def test_the_capability_statement_declares_the_messaging_operations(world: World) -> None:
    statement = world.get("P", "/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    declared = {(rtype, o["name"]): o["definition"] for rtype in ("Communication", "Patient")
                for o in resources[rtype].get("operation", [])}
    assert declared[("Communication", "mark-read")].endswith("/OperationDefinition/mark-read")
    assert declared[("Patient", "unread-messages")].endswith("/OperationDefinition/unread-messages")
