"""`Patient/{id}/$everything` under the record's rules (issue 17, "The patient's data, theirs to
take"): the patient gets their whole visible record, an authorised professional what they may
see, a blocked one the record-level 403; pages are true (no filtering after paging); `_since`
and `_type` narrow; referenced Practitioners come with the page that references them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.world import World, is_refusal, new_finess, now, open_world
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    for name in ("A", "C", "B"):
        world.practitioner(name)
    world.system("H", new_finess())
    world.patient_id, world.ins = world.patient()
    world.patient_caller("P", world.ins)
    for name in ("A", "C"):
        world.consent(world.patient_id, "permit", world.professionals[name])
    world.consent(world.patient_id, "deny", world.professionals["B"])
    world.deposit("letter", "H")
    world.deposit("masked", "A", labels=("MASQUE_PS",), author=world.professionals["A"])
    world.deposit("invisible", "H", labels=("INVISIBLE_PATIENT",))
    world.binaries["observation"] = world.create({
        "resourceType": "Observation", "status": "final", "code": {"text": f"weight {world.unique}"},
        "subject": {"reference": f"Patient/{world.patient_id}"},
        "performer": [{"reference": f"Practitioner/{world.professionals['C'].practitioner_id}"}]})
    # Another patient's record: never in this one's.
    other, _ = world.patient()
    world.binaries["elsewhere"] = world.create({"resourceType": "Observation", "status": "final",
                                                "code": {"text": "other"}, "subject": {"reference": f"Patient/{other}"}})
    yield world
    world.http.close()


def _pages(world: World, caller: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    response = world.get(caller, f"/Patient/{world.patient_id}/$everything", params=params or {})
    assert response.status_code == 200, response.text
    pages = [response.json()]
    while (following := next((l["url"] for l in pages[-1].get("link", []) if l["relation"] == "next"), None)):
        assert "$everything" in following and len(pages) < 50
        response = world.http.get(following, headers=world.headers(caller))
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def _entries(pages: list[dict[str, Any]], mode: str = "match") -> list[tuple[str, str]]:
    return [(e["resource"]["resourceType"], e["resource"]["id"]) for page in pages for e in page.get("entry", [])
            if e.get("search", {}).get("mode") == mode]


def _documents(world: World, pages: list[dict[str, Any]]) -> set[str]:
    return {world.key_of(rid) or rid for rtype, rid in _entries(pages) if rtype == "DocumentReference"}


def test_the_patient_gets_their_record_but_not_what_is_invisible_to_them_yet(world: World) -> None:
    pages = _pages(world, "P")
    matches = _entries(pages)
    assert ("Patient", world.patient_id) in matches
    assert ("Observation", world.binaries["observation"]) in matches
    assert ("Observation", world.binaries["elsewhere"]) not in matches
    assert _documents(world, pages) == {"letter", "masked"}
    # The bytes of what they see come with it, not those of the invisible document.
    binaries = {rid for rtype, rid in _entries(pages, "include") if rtype == "Binary"}
    assert world.documents["letter"].binary_id in binaries
    assert world.documents["invisible"].binary_id not in binaries
    # The performer the Observation references comes with it.
    assert ("Practitioner", world.professionals["C"].practitioner_id) in _entries(pages, "include")


def test_professionals_see_what_the_rules_let_them_and_a_blocked_one_is_refused(world: World) -> None:
    assert _documents(world, _pages(world, "A")) == {"letter", "masked", "invisible"}
    assert _documents(world, _pages(world, "C")) == {"letter", "invisible"}
    response = world.get("B", f"/Patient/{world.patient_id}/$everything")
    assert is_refusal(response), response.text


def test_pages_are_true_every_resource_once_and_the_total_counts_them(world: World) -> None:
    whole = _pages(world, "C")
    assert len(whole) == 1
    paged = _pages(world, "C", {"_count": "2"})
    assert len(paged) > 3
    assert all(len([e for e in p.get("entry", []) if e["search"]["mode"] == "match"]) == 2 for p in paged[:-1])
    assert sorted(_entries(paged)) == sorted(_entries(whole))
    assert len(set(_entries(paged))) == len(_entries(paged))
    assert whole[0]["total"] == len(_entries(whole))
    # A token is bound to its search: the same page with other types is refused.
    following = next(l["url"] for l in paged[0]["link"] if l["relation"] == "next")
    token = following.split("_page=")[1].split("&")[0]
    response = world.get("C", f"/Patient/{world.patient_id}/$everything",
                         params={"_count": "2", "_type": "Observation", "_page": token})
    assert response.status_code == 400


def test_since_and_type_narrow_the_record(world: World) -> None:
    time.sleep(0.01)
    since = now()
    time.sleep(0.01)
    later = world.create({"resourceType": "Observation", "status": "final", "code": {"text": "later"},
                          "subject": {"reference": f"Patient/{world.patient_id}"}})
    assert _entries(_pages(world, "P", {"_since": since})) == [("Observation", later)]
    typed = _entries(_pages(world, "P", {"_type": "Observation"}))
    assert sorted(typed) == sorted([("Observation", world.binaries["observation"]), ("Observation", later)])
    assert world.get("P", f"/Patient/{world.patient_id}/$everything", params={"_since": "yesterday"}).status_code == 400
    assert world.get("P", f"/Patient/{world.patient_id}/$everything", params={"_type": "Questionnaire"}).status_code == 400


def test_an_unknown_patient_is_404_and_the_operation_is_declared(world: World) -> None:
    assert world.get("platform", "/Patient/no-such-patient/$everything").status_code == 404
    statement = world.get("platform", "/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"} \
        in patient["operation"]
