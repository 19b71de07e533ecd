"""Masking after the fact (issue 12, rules 4 and 9): once the patient masks a document, a
professional who is not its author loses every way to it, its earlier unmasked versions included
(history, vread) and its Binary; unmasking gives it back. The same holds for a label a
professional adds that hides a document from the patient.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.world import PHARMACIST, TRE_A07, World, bundle_ids, new_finess, not_found_shape, open_world
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")
    world.practitioner("D", profession=PHARMACIST)
    world.system("H", new_finess())
    world.patient_id, world.ins = world.patient()
    world.patient_caller("P", world.ins)
    for name in ("A", "D"):
        world.consent(world.patient_id, "permit", world.professionals[name])
    world.deposit("later_masked", "H")
    world.deposit("later_invisible", "H")
    yield world
    world.http.close()


def _relabel(world: World, caller: str, key: str, add: str | None = None, remove: str | None = None) -> None:
    path = f"/DocumentReference/{world.documents[key].id}"
    document = world.get(caller, path).json()
    labels = [label for label in document.get("securityLabel", [])
              if not any(c.get("code") == remove for c in label.get("coding", []))]
    if add:
        labels.append({"coding": [{"system": TRE_A07, "code": add}]})
    response = world.request(caller, "PUT", path, json={**document, "securityLabel": labels})
    assert response.status_code == 200, response.text


def _ways_in(world: World, caller: str, key: str, since: str) -> dict[str, Any]:
    """Every way `caller` might reach the document: what each answers (True: it shows it)."""
    document = world.documents[key]
    never = uuid.uuid4().hex
    found: dict[str, Any] = {}
    for name, path, never_path in (
            ("read", f"/DocumentReference/{document.id}", f"/DocumentReference/{never}"),
            ("vread 1", f"/DocumentReference/{document.id}/_history/1", f"/DocumentReference/{never}/_history/1"),
            ("binary", f"/Binary/{document.binary_id}", f"/Binary/{never}")):
        response = world.get(caller, path, headers={"Accept": "*/*"} if "Binary" in path else {})
        hidden_id = document.binary_id if "Binary" in path else document.id
        found[name] = response.status_code == 200 or (
            not_found_shape(response, hidden_id) != not_found_shape(world.get(caller, never_path), never))
    history = world.get(caller, f"/DocumentReference/{document.id}/_history")
    found["history"] = history.status_code == 200 and bool(bundle_ids(history.json()))
    listed = world.get(caller, "/DocumentReference/_history", params={"_since": since, "_count": "200"})
    found["type history"] = document.id in bundle_ids(listed.json())
    searched = world.get(caller, "/DocumentReference", params={"patient": world.patient_id, "_total": "accurate"})
    found["search"] = document.id in bundle_ids(searched.json())
    return found


def test_a_document_masked_later_is_gone_from_every_path_of_a_non_author(world: World) -> None:
    since = world.started
    assert all(_ways_in(world, "D", "later_masked", since).values())
    _relabel(world, "P", "later_masked", add="MASQUE_PS")
    assert _ways_in(world, "D", "later_masked", since) == dict.fromkeys(
        ("read", "vread 1", "binary", "history", "type history", "search"), False)
    _relabel(world, "P", "later_masked", remove="MASQUE_PS")
    assert all(_ways_in(world, "D", "later_masked", since).values())


def test_a_document_made_invisible_to_the_patient_later_is_gone_from_every_path_of_theirs(world: World) -> None:
    since = world.started
    assert all(_ways_in(world, "P", "later_invisible", since).values())
    _relabel(world, "H", "later_invisible", add="INVISIBLE_PATIENT")
    assert _ways_in(world, "P", "later_invisible", since) == dict.fromkeys(
        ("read", "vread 1", "binary", "history", "type history", "search"), False)
