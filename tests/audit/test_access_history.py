"""Who reads the trail (issue 13): the patient reads exactly the accesses to their record (never
another's), emergency accesses flagged; their médecin traitant reads them too; a professional
reads only their own events; a system its own client's; an admin nothing. Names are resolved and
`_include=AuditEvent:agent` brings the Practitioner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.access.world import World, new_finess, new_ins, open_world
from tests.audit.trail import is_btg, references, requestor_id, trail
from tests.server_process import ServerProcess, server_token


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    for name in ("A", "T", "E", "N"):
        world.practitioner(name)
    world.emergency("E_btg", "E")
    world.system("H", new_finess())
    patients = world.patients
    patients["P"], ins_p = world.patient(general_practitioner=world.professionals["T"].practitioner_id)
    patients["Q"], ins_q = world.patient()
    world.patient_caller("P", ins_p)
    world.patient_caller("Q", ins_q)
    world.tokens["admin"] = server_token(server.data_dir, server.base_url, "admin")
    for patient in ("P", "Q"):
        world.consent(patients[patient], "permit", world.professionals["A"])
        world.deposit(f"doc_{patient}", "H", patients[patient])
    # The accesses the trail must show.
    for patient in ("P", "Q"):
        assert world.get("A", f"/DocumentReference/{world.documents[f'doc_{patient}'].id}").status_code == 200
    assert world.get("N", f"/DocumentReference/{world.documents['doc_P'].id}").status_code == 403
    assert world.get("E_btg", f"/DocumentReference/{world.documents['doc_P'].id}").status_code == 200
    yield world
    world.http.close()


def ids(events: list[dict]) -> set[str]:
    return {e["id"] for e in events}


def test_the_patient_reads_exactly_the_accesses_to_their_record(world: World) -> None:
    p, q = world.patients["P"], world.patients["Q"]
    own = trail(world, "P", patient=p)
    assert ids(own) == ids(trail(world, patient=p))
    assert own and all(f"Patient/{p}" in references(e) for e in own)
    assert not any(f"Patient/{q}" in references(e) or world.documents["doc_Q"].id in str(e) for e in own)
    readers = {requestor_id(e) for e in own}
    assert {world.professionals[n].idnatps for n in ("A", "N", "E")} <= readers
    # Without a parameter: their own record too.
    assert ids(trail(world, "P")) == ids(trail(world, "P", patient=p))


def test_the_patient_reads_nothing_of_another_record(world: World) -> None:
    assert trail(world, "P", patient=world.patients["Q"]) == []
    stranger = world.tokens["P"]
    world.patient_caller("stranger", new_ins())
    assert trail(world, "stranger") == []
    world.tokens["P"] = stranger


def test_emergency_access_is_flagged(world: World) -> None:
    p = world.patients["P"]
    emergency = [e for e in trail(world, "P", patient=p) if requestor_id(e) == world.professionals["E"].idnatps]
    assert emergency and all(is_btg(e) for e in emergency)
    assert not any(is_btg(e) for e in trail(world, "P", patient=p) if e not in emergency)


def test_the_medecin_traitant_reads_the_trail(world: World) -> None:
    p = world.patients["P"]
    assert ids(trail(world, "T", patient=p)) == ids(trail(world, patient=p))
    # Of a patient they do not treat: only their own events (none).
    assert trail(world, "T", patient=world.patients["Q"]) == []


def test_a_professional_reads_only_their_own_events(world: World) -> None:
    mine = trail(world, "A")
    assert mine and {requestor_id(e) for e in mine} == {world.professionals["A"].idnatps}
    assert {f"Patient/{world.patients['P']}", f"Patient/{world.patients['Q']}"} <= set().union(*map(references, mine))
    about_p = trail(world, "A", patient=world.patients["P"])
    assert about_p and all(requestor_id(e) == world.professionals["A"].idnatps for e in about_p)


def test_a_system_reads_its_own_events_and_an_admin_none(world: World) -> None:
    own = trail(world, "H")
    assert own and all(e["agent"][0]["role"][0]["coding"][0]["code"] == "ASSIGNED" for e in own)
    assert not any(requestor_id(e) == world.professionals["A"].idnatps for e in own)
    # An admin's token carries no scope on clinical data: refused by scope, and nothing in any case.
    response = world.get("admin", "/AuditEvent")
    assert response.status_code == 403 or response.json().get("entry", []) == []


def test_names_are_resolved_and_included(world: World) -> None:
    response = world.get("P", "/AuditEvent", params={"patient": world.patients["P"], "_include": "AuditEvent:agent"})
    bundle = response.json()
    included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert world.professionals["A"].practitioner_id in included
    agents = [a for e in bundle["entry"] if e["search"]["mode"] == "match" for a in e["resource"]["agent"]
              if a.get("who", {}).get("reference") == f"Practitioner/{world.professionals['A'].practitioner_id}"]
    assert agents and all(world.unique in a["who"]["display"] for a in agents)


def test_paging_and_dates(world: World) -> None:
    p = world.patients["P"]
    everything = trail(world, patient=p)
    first = world.get("platform", "/AuditEvent", params={"patient": p, "_count": "2"}).json()
    assert len(first["entry"]) == 2
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = world.http.get(following, headers=world.headers("platform")).json()
    assert ids([e["resource"] for e in first["entry"] + second["entry"]]) == ids(everything[:4])
    newest = everything[0]["recorded"]
    assert ids(trail(world, patient=p, date=f"ge{newest}")) == {everything[0]["id"]}
    assert everything[0]["id"] not in ids(trail(world, patient=p, date=f"lt{newest}"))
