"""Count probing (issue 12, "Done when"): two authorised physicians run the same queries on twin
records, P holding a masked document of Dr A beside three letters, Q holding the same three
letters only. Dr B, who is not the author, must get on P exactly what Q answers: the same totals,
the same pages, the same links. Dr A, the author, sees one more on P: the probe would notice it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.world import TRE_A07, World, bundle_ids, new_finess, open_world
from tests.server_process import ServerProcess

LETTERS = 3


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")
    world.practitioner("B")
    world.system("H", new_finess())
    twins = world.patients
    for name in ("P", "Q"):
        patient_id, _ = world.patient()
        twins[name] = patient_id
        for doctor in ("A", "B"):
            world.consent(patient_id, "permit", world.professionals[doctor])
    for name, patient_id in twins.items():
        for n in range(LETTERS):
            world.deposit(f"{name}-letter-{n}", "H", patient_id)
    world.deposit("P-masked", "A", twins["P"], labels=("MASQUE_PS",), author=world.professionals["A"])
    yield world
    world.http.close()


def _probe(world: World, caller: str, patient: str, params: list[tuple[str, str]], path: str = "/DocumentReference") -> Any:
    """What a probing caller can observe of a query: status, total, entries per page, the links
    each page offers (without their opaque cursors)."""
    pages: list[dict[str, Any]] = []
    response = world.get(caller, path.replace("{p}", patient), params=params)
    assert response.status_code == 200, response.text
    pages.append(response.json())
    while (following := next((l["url"] for l in pages[-1].get("link", []) if l["relation"] == "next"), None)):
        assert len(pages) < 20
        response = world.http.get(following, headers=world.headers(caller))
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return [(page.get("total"), len(page.get("entry", [])), sorted(l["relation"] for l in page.get("link", [])))
            for page in pages]


MASQUE = f"{TRE_A07}|MASQUE_PS"
QUERIES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "total": ("/DocumentReference", [("patient", "{p}"), ("_total", "accurate")]),
    "summary_count": ("/DocumentReference", [("patient", "{p}"), ("_summary", "count")]),
    "pages_of_one": ("/DocumentReference", [("patient", "{p}"), ("_count", "1"), ("_total", "accurate")]),
    "page_of_the_visible_count": ("/DocumentReference", [("patient", "{p}"), ("_count", str(LETTERS))]),
    "pages_of_two": ("/DocumentReference", [("patient", "{p}"), ("_count", "2")]),
    "compartment_count": ("/Patient/{p}/DocumentReference", [("_summary", "count")]),
    "masked_label_count": ("/DocumentReference", [("patient", "{p}"), ("security-label", MASQUE), ("_summary", "count")]),
    "has_masked": ("/Patient", [("_id", "{p}"), ("_has:DocumentReference:patient:security-label", MASQUE),
                                ("_total", "accurate")]),
    "revinclude_count": ("/Patient", [("_id", "{p}"), ("_revinclude", "DocumentReference:subject"), ("_count", "2")]),
    "sorted_by_date": ("/DocumentReference", [("patient", "{p}"), ("_sort", "-date"), ("_count", "2"),
                                              ("_total", "accurate")]),
}


def _run(world: World, caller: str, twin: str, query: str) -> Any:
    path, params = QUERIES[query]
    patient = world.patients[twin]
    return _probe(world, caller, patient, [(k, v.replace("{p}", patient)) for k, v in params], path)


@pytest.mark.parametrize("query", list(QUERIES))
def test_the_non_author_learns_nothing_from_counts_and_pages(world: World, query: str) -> None:
    assert _run(world, "B", "P", query) == _run(world, "B", "Q", query)


@pytest.mark.parametrize("query", ["total", "summary_count", "pages_of_one", "masked_label_count", "has_masked"])
def test_the_author_sees_the_difference_the_probe_looks_for(world: World, query: str) -> None:
    """The twins do differ, by the masked document: the probe above is not blind."""
    assert _run(world, "A", "P", query) != _run(world, "A", "Q", query)


def test_the_submission_set_of_a_masked_document_does_not_betray_it(world: World) -> None:
    """ITI-65 stores a submission set (List) with each document: if Dr B counts the Lists of P, a
    list for the masked document would tell one was deposited even though the document is hidden.
    (The rules name documents; whether a masked document's submission set is hidden with it is
    the lead's call: this test makes the leak visible.)"""
    query = [("patient", "{p}"), ("_include", "List:item"), ("_count", "2"), ("_total", "accurate")]
    runs = {}
    for twin in ("P", "Q"):
        patient = world.patients[twin]
        runs[twin] = _probe(world, "B", patient, [(k, v.replace("{p}", patient)) for k, v in query], "/List")
    assert runs["P"] == runs["Q"]


def test_the_non_author_pages_hold_exactly_the_letters(world: World) -> None:
    patient = world.patients["P"]
    response = world.get("B", "/DocumentReference", params={"patient": patient, "_count": "100"})
    assert response.status_code == 200, response.text
    letters = {world.documents[f"P-letter-{n}"].id for n in range(LETTERS)}
    assert bundle_ids(response.json()) == letters


def test_following_the_authors_next_links_shows_the_non_author_nothing_more(world: World) -> None:
    """Paging links are the author's, handed to Dr B: each page is answered for Dr B."""
    patient = world.patients["P"]
    masked = world.documents["P-masked"].id
    response = world.get("A", "/DocumentReference", params={"patient": patient, "_count": "1"})
    assert response.status_code == 200, response.text
    page, seen_by_a, seen_by_b = response.json(), set(), set()
    while True:
        seen_by_a |= bundle_ids(page)
        following = next((l["url"] for l in page.get("link", []) if l["relation"] == "next"), None)
        if following is None:
            break
        answered = world.http.get(following, headers=world.headers("B"))
        if answered.status_code == 200:
            seen_by_b |= bundle_ids(answered.json())
        page = world.http.get(following, headers=world.headers("A")).json()
    assert masked in seen_by_a
    assert masked not in seen_by_b
