"""The participant rule (../shared/DECISIONS.md, "Access rules"; policies/participants.json): a
professional or an establishment sees the Communications naming them as sender or recipient,
whatever the record authorisation, and only those; a block still shuts the whole record.

The Communications here are plain ones written by the platform: the rule is about what names whom,
not about the messaging rules (tests/messaging/test_threads.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.world import (IDNATPS_SYSTEM, FINESS, PHARMACIST, World, bundle_ids, is_refusal, new_finess,
                                open_world)
from tests.mhd.documents import PDF
from tests.server_process import ServerProcess


def ps(world: World, name: str) -> dict[str, Any]:
    return {"identifier": {"system": IDNATPS_SYSTEM, "value": world.professionals[name].idnatps}}


def communication(world: World, sender: dict[str, Any], *recipients: dict[str, Any]) -> str:
    return world.create({"resourceType": "Communication", "status": "completed",
                         "subject": {"reference": f"Patient/{world.patient_id}"},
                         "sender": sender, "recipient": list(recipients),
                         "payload": [{"contentString": f"Message {world.unique}"}]})


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.patient_id, world.ins = world.patient()
    world.patient_caller("P", world.ins)
    pharmacy = new_finess()
    world.practitioner("Authorised")
    world.practitioner("Taking-part")
    world.practitioner("Stranger")
    world.practitioner("Blocked")
    world.practitioner("Pharmacist", profession=PHARMACIST, organization=pharmacy)
    world.system("Pharmacy", pharmacy)
    world.system("Hospital", new_finess())
    world.consent(world.patient_id, "permit", world.professionals["Authorised"])
    world.consent(world.patient_id, "deny", world.professionals["Blocked"])
    patient = {"reference": f"Patient/{world.patient_id}"}
    world.binaries["with-b"] = communication(world, ps(world, "Taking-part"), patient)
    world.binaries["with-blocked"] = communication(world, patient, ps(world, "Blocked"))
    world.binaries["with-pharmacy"] = communication(world, patient, {"identifier": {"system": FINESS, "value": pharmacy}})
    world.binaries["attachment"] = world.create({
        "resourceType": "Binary", "contentType": "application/pdf", "data": base64.b64encode(PDF).decode(),
        "securityContext": {"reference": f"Communication/{world.binaries['with-b']}"}})
    world.deposit("letter", "Hospital")
    yield world
    world.http.close()


def _communications(world: World, caller: str, query: str = "") -> set[str]:
    response = world.get(caller, f"/Communication{query}")
    assert response.status_code == 200, response.text
    return bundle_ids(response.json(), "Communication")


def test_a_professional_taking_part_sees_the_thread_without_authorisation(world: World) -> None:
    mine = world.binaries["with-b"]
    assert world.get("Taking-part", f"/Communication/{mine}").status_code == 200
    assert _communications(world, "Taking-part", f"?patient={world.patient_id}") == {mine}
    assert world.get("Taking-part", f"/Binary/{world.binaries['attachment']}").status_code == 200
    # Who the patient is, and nothing else of the record.
    assert world.get("Taking-part", f"/Patient/{world.patient_id}").status_code == 200
    assert world.get("Taking-part", f"/DocumentReference/{world.documents['letter'].id}").status_code == 404
    assert bundle_ids(world.get("Taking-part", f"/DocumentReference?patient={world.patient_id}").json()) == set()
    # Across records too: their inbox.
    assert mine in _communications(world, "Taking-part")


def test_an_authorised_professional_not_taking_part_sees_no_thread(world: World) -> None:
    assert _communications(world, "Authorised", f"?patient={world.patient_id}") == set()
    assert world.get("Authorised", f"/Communication/{world.binaries['with-b']}").status_code == 404
    assert world.get("Authorised", f"/Binary/{world.binaries['attachment']}").status_code == 404
    # The rest of the record is theirs as before.
    assert world.get("Authorised", f"/DocumentReference/{world.documents['letter'].id}").status_code == 200


def test_a_professional_neither_authorised_nor_taking_part_is_refused(world: World) -> None:
    assert is_refusal(world.get("Stranger", f"/Communication?patient={world.patient_id}"))
    assert is_refusal(world.get("Stranger", f"/Communication/{world.binaries['with-b']}"))
    assert world.binaries["with-b"] not in _communications(world, "Stranger")


def test_a_blocked_professional_loses_the_threads_they_take_part_in(world: World) -> None:
    assert is_refusal(world.get("Blocked", f"/Communication/{world.binaries['with-blocked']}"))
    assert is_refusal(world.get("Blocked", f"/Communication?patient={world.patient_id}"))
    assert world.binaries["with-blocked"] not in _communications(world, "Blocked")


def test_an_establishment_and_its_professionals_see_its_threads(world: World) -> None:
    theirs = world.binaries["with-pharmacy"]
    assert _communications(world, "Pharmacy", f"?patient={world.patient_id}") == {theirs}
    assert theirs in _communications(world, "Pharmacy")
    assert _communications(world, "Pharmacist", f"?patient={world.patient_id}") == {theirs}
    assert _communications(world, "Hospital", f"?patient={world.patient_id}") == set()


def test_the_patient_sees_every_thread_of_their_record(world: World) -> None:
    assert _communications(world, "P", f"?patient={world.patient_id}") == {
        world.binaries["with-b"], world.binaries["with-blocked"], world.binaries["with-pharmacy"]}
