"""A Binary is readable only through the resource its `securityContext` names (issue 12; docs/
ACCESS-RULES.md, "Binary"), whichever way it was written (ITI-65, a raw POST with
X-Security-Context, a FHIR JSON POST), and stays in step when that resource's labels change.
Naming a hidden resource as the context of a new Binary tells nothing about it either.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest

from tests.access.world import (PHARMACIST, REFUSED, TRE_A07, World, is_refusal, new_finess, not_found_shape,
                                open_world)
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")
    world.practitioner("D", profession=PHARMACIST)
    world.practitioner("N")
    world.system("H", new_finess())
    world.patient_id, world.ins = world.patient()
    world.patient_caller("P", world.ins)
    for name in ("A", "D"):
        world.consent(world.patient_id, "permit", world.professionals[name])
    masked = world.deposit("masked", "A", labels=("MASQUE_PS",), author=world.professionals["A"])
    plain = world.deposit("plain", "H")
    raw = world.request("A", "POST", "/Binary", content=b"raw scan " + uuid.uuid4().bytes,
                        headers={"Content-Type": "application/octet-stream",
                                 "X-Security-Context": f"DocumentReference/{masked.id}"})
    assert raw.status_code == 201, raw.text
    world.binaries["raw"] = raw.json()["id"]
    as_json = world.request("H", "POST", "/Binary", json={
        "resourceType": "Binary", "contentType": "text/plain", "data": base64.b64encode(b"note").decode(),
        "securityContext": {"reference": f"DocumentReference/{plain.id}"}})
    assert as_json.status_code == 201, as_json.text
    world.binaries["json"] = as_json.json()["id"]
    yield world
    world.http.close()


def _read(world: World, caller: str, binary_id: str) -> str:
    response = world.get(caller, f"/Binary/{binary_id}", headers={"Accept": "*/*"})
    if is_refusal(response):
        return REFUSED
    if response.status_code == 404:
        never = uuid.uuid4().hex
        assert not_found_shape(response, binary_id) == \
            not_found_shape(world.get(caller, f"/Binary/{never}", headers={"Accept": "*/*"}), never)
        return "hidden"
    assert response.status_code == 200, response.text
    return "read"


@pytest.mark.parametrize(("caller", "raw", "as_json"), [
    ("A", "read", "read"), ("D", "hidden", "read"), ("P", "read", "read"), ("N", REFUSED, REFUSED),
    ("H", "hidden", "read"), ("platform", "read", "read")])
def test_a_binary_follows_its_security_context(world: World, caller: str, raw: str, as_json: str) -> None:
    assert _read(world, caller, world.binaries["raw"]) == raw
    assert _read(world, caller, world.binaries["json"]) == as_json


def test_naming_a_hidden_document_as_context_tells_nothing(world: World) -> None:
    """Dr D writes a Binary whose context is the masked document, then one naming a document that
    never existed: both answer alike."""
    answers = []
    for target in (world.documents["masked"].id, uuid.uuid4().hex):
        response = world.request("D", "POST", "/Binary", content=b"probe",
                                 headers={"Content-Type": "application/octet-stream",
                                          "X-Security-Context": f"DocumentReference/{target}"})
        answers.append((response.status_code, response.json().get("resourceType")))
    assert answers[0] == answers[1], answers
    # Not a refusal of the request itself: the same Binary naming a document Dr D sees is taken.
    visible = world.request("D", "POST", "/Binary", content=b"probe", headers={
        "Content-Type": "application/octet-stream", "X-Security-Context": f"DocumentReference/{world.documents['plain'].id}"})
    assert visible.status_code == 201, visible.text


def test_the_binary_follows_its_document_when_the_label_changes(world: World) -> None:
    """The patient unmasks the document: Dr D now reads it and its Binary."""
    document = world.get("P", f"/DocumentReference/{world.documents['masked'].id}").json()
    document["securityLabel"] = [label for label in document.get("securityLabel", [])
                                 if not any(c.get("system") == TRE_A07 for c in label.get("coding", []))]
    response = world.request("P", "PUT", f"/DocumentReference/{document['id']}", json=document)
    assert response.status_code == 200, response.text
    assert _read(world, "D", world.documents["masked"].binary_id) == "read"
    assert _read(world, "D", world.binaries["raw"]) == "read"
