"""Emergency access, "break the glass" (issue 12, rule 5): a professional whose token carries
purpose of use BTG reads a record that did not authorise them, masked documents excepted, unless
the patient opposed emergency access or blocked them; each such access leaves an
`emergency-access` event in the outbox (the notification to the patient and the médecin traitant
comes with the audit issue).

Runs on the hooked server of tests/access/conftest.py, whose after-commit hook writes each outbox
event to a file: that is where the event is looked for.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.conftest import HookedServer
from tests.access.world import (World, bundle_ids, is_refusal, new_finess, not_found_shape, open_world,
                                says_authorisation_missing)


@pytest.fixture(scope="module")
def world(hooked_server: HookedServer) -> Iterator[World]:
    world = open_world(hooked_server.server)
    for name in ("A", "E", "T", "C"):
        world.practitioner(name)
    for name in ("A", "E", "T", "C"):
        world.emergency(f"{name}_btg", name)
    world.system("H", new_finess())
    patients = world.patients
    patients["P"], _ = world.patient(general_practitioner=world.professionals["T"].practitioner_id)
    world.consent(patients["P"], "permit", world.professionals["A"])
    world.consent(patients["P"], "deny", world.professionals["C"])
    world.deposit("plain", "H", patients["P"])
    world.deposit("masked", "H", patients["P"], labels=("MASQUE_PS",))
    patients["Q"], _ = world.patient()
    world.consent(patients["Q"], "permit", world.professionals["A"])
    world.consent(patients["Q"], "deny", purpose=True)
    world.deposit("plain_q", "H", patients["Q"])
    patients["Z"], _ = world.patient()
    world.consent(patients["Z"], "permit", world.professionals["A"])
    world.deposit("plain_z", "H", patients["Z"])
    yield world
    world.http.close()


def _events(hooked_server: HookedServer) -> list[dict[str, Any]]:
    if not hooked_server.events.exists():
        return []
    return [json.loads(line) for line in hooked_server.events.read_text().splitlines() if line]


def _is_emergency(event: dict[str, Any]) -> bool:
    return any("emergency" in str(event.get(k) or "").lower() for k in ("kind", "method", "_id", "rid"))


def _wait_for(hooked_server: HookedServer, found: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(hooked_server)
        if any(found(e) for e in events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"no such event within {timeout}s")


def _documents(world: World, caller: str, patient: str) -> set[str] | str:
    response = world.get(caller, "/DocumentReference", params={"patient": patient})
    if is_refusal(response):
        return "refused"
    assert response.status_code == 200, response.text
    return {k for k in (world.key_of(i) for i in bundle_ids(response.json())) if k}


def test_breaking_the_glass_opens_the_record_but_not_its_masked_documents(world: World) -> None:
    assert _documents(world, "E_btg", world.patients["P"]) == {"plain"}
    assert world.get("E_btg", f"/DocumentReference/{world.documents['plain'].id}").status_code == 200
    masked = world.documents["masked"]
    never = uuid.uuid4().hex
    for path in ("/DocumentReference/{}", "/Binary/{}"):
        hidden_id = masked.id if path.startswith("/Doc") else masked.binary_id
        hidden = world.get("E_btg", path.format(hidden_id))
        assert hidden.status_code == 404, hidden.text
        assert not_found_shape(hidden, hidden_id) == not_found_shape(world.get("E_btg", path.format(never)), never)


def test_the_same_professional_without_btg_is_refused(world: World) -> None:
    response = world.get("E", "/DocumentReference", params={"patient": world.patients["P"]})
    assert is_refusal(response), response.text
    assert says_authorisation_missing(response), response.text


def test_breaking_the_glass_leaves_an_emergency_access_event(world: World, hooked_server: HookedServer) -> None:
    patient = world.patients["P"]
    assert _documents(world, "E_btg", patient) == {"plain"}
    _wait_for(hooked_server, lambda e: _is_emergency(e) and e.get("pat") == patient)


def test_an_authorised_professional_with_btg_is_no_emergency_access(world: World, hooked_server: HookedServer) -> None:
    """Dr A is authorised on Z: their BTG token reads Z as usual and leaves no emergency event
    (the outbox is ordered per patient: once a later write of Z is delivered, any event of the
    read would have been too)."""
    patient = world.patients["Z"]
    assert _documents(world, "A_btg", patient) == {"plain_z"}
    marker = world.create({"resourceType": "Observation", "status": "final", "code": {"text": "marker"},
                           "subject": {"reference": f"Patient/{patient}"}})
    events = _wait_for(hooked_server, lambda e: e.get("rid") == f"Observation/{marker}")
    assert [e for e in events if _is_emergency(e) and e.get("pat") == patient] == []


def test_a_patient_who_opposed_emergency_access_is_not_opened_by_btg(world: World) -> None:
    assert _documents(world, "E_btg", world.patients["Q"]) == "refused"


def test_opposing_emergency_access_leaves_authorised_professionals_their_access(world: World) -> None:
    assert _documents(world, "A", world.patients["Q"]) == {"plain_q"}
    assert _documents(world, "A_btg", world.patients["Q"]) == {"plain_q"}


def test_a_blocked_professional_cannot_break_the_glass(world: World) -> None:
    assert _documents(world, "C_btg", world.patients["P"]) == "refused"
    assert is_refusal(world.get("C_btg", f"/DocumentReference/{world.documents['plain'].id}"))


def test_the_medecin_traitant_breaking_the_glass_keeps_their_own_access(world: World) -> None:
    """Designated by the patient, Dr T sees masked documents; BTG takes nothing away from that."""
    assert _documents(world, "T", world.patients["P"]) == {"plain", "masked"}
    assert _documents(world, "T_btg", world.patients["P"]) == {"plain", "masked"}
