"""The patient and their legal representatives (issue 12, rules 7 and 8; DECISIONS "Callers and
identifiers"): the patient reads their record but INVISIBLE_PATIENT documents, until a month after
deposit or until a professional removes the label; a parent or guardian (a RelatedPerson of the
minor with the representative's INS and relationship PRN, MTH, FTH or GUARD), with a patient token
of their own INS and the minor as launch context, reads it but INVISIBLE_PATIENT and
INVISIBLE_REPRESENTANTS_LEGAUX documents. Anyone else naming the minor as context reads nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.access.world import (REFUSED, TRE_A07, World, bundle_ids, is_refusal, new_finess, new_ins,
                                not_found_shape, open_world)
from tests.server_process import ServerProcess

DOCUMENTS = ("plain", "inv_patient", "inv_rep")
VISIBLE: dict[str, set[str] | str] = {
    "M": {"plain", "inv_rep"},
    "PRN": {"plain"},
    "MTH": {"plain"},
    "FTH": {"plain"},
    "GUARD": {"plain"},
    # A RelatedPerson that is no parent or guardian.
    "FRND": REFUSED,
    # No RelatedPerson at all.
    "stranger": REFUSED,
    # A parent of another child, naming this one.
    "other_parent": REFUSED,
    # A parent whose RelatedPerson was deleted.
    "revoked": REFUSED,
}


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.system("H", new_finess())
    world.practitioner("A")
    world.patient_id, world.ins = world.patient(birth_date="2016-02-29")
    world.patients["other"], _ = world.patient(birth_date="2018-06-01")
    world.patient_caller("M", world.ins)
    for relationship in ("PRN", "MTH", "FTH", "GUARD", "FRND"):
        ins = new_ins()
        world.representative(world.patient_id, ins, relationship)
        world.patient_caller(relationship, ins, context=world.patient_id)
    world.patient_caller("stranger", new_ins(), context=world.patient_id)
    other_parent = new_ins()
    world.representative(world.patients["other"], other_parent, "PRN")
    world.patient_caller("other_parent", other_parent, context=world.patient_id)
    revoked = new_ins()
    link = world.representative(world.patient_id, revoked, "PRN")
    assert world.request("platform", "DELETE", f"/RelatedPerson/{link}").status_code in (200, 204)
    world.patient_caller("revoked", revoked, context=world.patient_id)
    world.consent(world.patient_id, "permit", world.professionals["A"])
    world.deposit("plain", "H")
    world.deposit("inv_patient", "H", labels=("INVISIBLE_PATIENT",))
    world.deposit("inv_rep", "H", labels=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    world.deposit("unlabelled_later", "H", labels=("INVISIBLE_PATIENT",))
    yield world
    world.http.close()


def _seen(world: World, caller: str) -> set[str] | str:
    response = world.get(caller, "/DocumentReference", params={"patient": world.patient_id})
    if is_refusal(response):
        return REFUSED
    assert response.status_code == 200, response.text
    return {k for k in (world.key_of(i) for i in bundle_ids(response.json())) if k in DOCUMENTS}


@pytest.mark.parametrize("caller", list(VISIBLE))
def test_search_shows_what_the_patient_or_representative_may_see(world: World, caller: str) -> None:
    assert _seen(world, caller) == VISIBLE[caller]


@pytest.mark.parametrize("caller", list(VISIBLE))
def test_reads_of_documents_and_binaries_follow_the_same_rule(world: World, caller: str) -> None:
    for key in DOCUMENTS:
        document = world.documents[key]
        for path, hidden_id in ((f"/DocumentReference/{document.id}", document.id),
                                (f"/Binary/{document.binary_id}", document.binary_id)):
            response = world.get(caller, path, headers={"Accept": "*/*"} if "Binary" in path else {})
            if VISIBLE[caller] == REFUSED:
                assert response.status_code in (403, 404), (key, path, response.text)
            elif key in VISIBLE[caller]:
                assert response.status_code == 200, (key, path, response.text)
            else:
                never = "0" * 8 + hidden_id[8:]
                assert not_found_shape(response, hidden_id) == \
                    not_found_shape(world.get(caller, path.replace(hidden_id, never)), never), (key, path)


@pytest.mark.parametrize("caller", ["M", "PRN"])
def test_totals_and_includes_do_not_count_what_they_may_not_see(world: World, caller: str) -> None:
    want = VISIBLE[caller]
    assert isinstance(want, set)
    counted = world.get(caller, "/DocumentReference", params={"patient": world.patient_id, "_summary": "count"})
    assert counted.json()["total"] == len(want), counted.text
    included = world.get(caller, "/List", params={"patient": world.patient_id, "_include": "List:item"})
    assert included.status_code == 200, included.text
    assert {world.key_of(i) for i in bundle_ids(included.json(), mode="include")} == want


def test_a_professional_removing_invisible_patient_shows_the_document_to_the_patient(world: World) -> None:
    """The label is what hides it: its removal by the depositor makes the document visible at once."""
    document = world.documents["unlabelled_later"]
    assert world.get("M", f"/DocumentReference/{document.id}").status_code == 404
    current = world.get("H", f"/DocumentReference/{document.id}").json()
    current["securityLabel"] = [label for label in current["securityLabel"]
                                if not any(c.get("system") == TRE_A07 for c in label.get("coding", []))]
    updated = world.request("H", "PUT", f"/DocumentReference/{document.id}", json=current)
    assert updated.status_code == 200, updated.text
    assert world.get("M", f"/DocumentReference/{document.id}").status_code == 200
