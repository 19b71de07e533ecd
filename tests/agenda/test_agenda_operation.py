"""`GET Patient/{id}/$agenda` (issue 15): appointments and prevention reminders of one patient in
one time-ordered searchset, within a window, under the record's access rules."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from fhir_server.agenda.operation import DEFINITION
from fhir_server.security.callers import IDNATPS_SYSTEM
from tests.access.world import World
from tests.agenda.conftest import born, due_dates, person


def _appointment(world: World, patient_id: str, start: str, status: str = "booked", idnatps: str | None = None) -> str:
    """An appointment of the patient, with the professional of `idnatps` taking part (named by
    identifier, as SIU's AIP-3 names them)."""
    participants: list[dict[str, Any]] = [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}]
    if idnatps:
        practitioner = {"type": "Practitioner", "identifier": {"system": IDNATPS_SYSTEM, "value": idnatps}}
        participants.append({"actor": practitioner, "status": "accepted"})
    return world.create({"resourceType": "Appointment", "status": status, "start": start,
                         "end": start.replace(":00:00Z", ":30:00Z"), "participant": participants})


def _agenda(world: World, caller: str, patient_id: str, **window: str) -> Any:
    return world.get(caller, f"/Patient/{patient_id}/$agenda", params=window)


def test_appointments_and_reminders_in_date_order(agenda_world: World) -> None:
    birth_date = born(66, -20)
    patient_id, _ = person(agenda_world, birth_date)
    due_dates(agenda_world, patient_id, "influenza-65")
    soon = (date.today() + timedelta(days=10)).isoformat()
    later = (date.today() + timedelta(days=400)).isoformat()
    first = _appointment(agenda_world, patient_id, f"{soon}T09:00:00Z")
    second = _appointment(agenda_world, patient_id, f"{later}T09:00:00Z")
    other_id, _ = person(agenda_world, born(40, -20))
    _appointment(agenda_world, other_id, f"{soon}T10:00:00Z")

    response = _agenda(agenda_world, patient_id, patient_id)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset" and bundle["total"] == len(bundle["entry"])
    resources = [e["resource"] for e in bundle["entry"]]
    dates = [r.get("start") or r.get("occurrenceDateTime") for r in resources]
    assert dates == sorted(dates)
    ids = [r["id"] for r in resources]
    assert first in ids and second in ids
    assert {r["resourceType"] for r in resources} == {"Appointment", "CommunicationRequest"}
    # Only this patient's.
    assert all(r.get("subject", {}).get("reference", f"Patient/{patient_id}") == f"Patient/{patient_id}"
               for r in resources)
    assert all(any(p["actor"]["reference"] == f"Patient/{patient_id}" for p in r["participant"])
               for r in resources if r["resourceType"] == "Appointment")

    window = _agenda(agenda_world, patient_id, patient_id, start=date.today().isoformat(),
                     end=(date.today() + timedelta(days=30)).isoformat()).json()
    assert [e["resource"]["id"] for e in window["entry"]] == [first]


def test_another_patient_and_an_unauthorised_professional_are_refused(agenda_world: World) -> None:
    patient_id, _ = person(agenda_world, born(40, -20))
    _appointment(agenda_world, patient_id, f"{date.today().isoformat()}T09:00:00Z")
    intruder, _ = person(agenda_world, born(30, -20))
    refused = _agenda(agenda_world, intruder, patient_id)
    assert refused.status_code in (403, 404), refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    agenda_world.practitioner("stranger")
    stranger = _agenda(agenda_world, "stranger", patient_id)
    assert stranger.status_code == 403, stranger.text
    assert "entry" not in stranger.json()


def test_a_professional_sees_the_appointments_they_take_part_in_and_nothing_else(agenda_world: World) -> None:
    """The participant rule (policies/participants.json): not authorised on the record, a
    professional taking part in one appointment sees that one, not the patient's other
    appointments nor their reminders."""
    patient_id, _ = person(agenda_world, born(66, -20))
    due_dates(agenda_world, patient_id, "influenza-65")
    radiologist = agenda_world.practitioner("radiologist")
    day = (date.today() + timedelta(days=5)).isoformat()
    theirs = _appointment(agenda_world, patient_id, f"{day}T09:00:00Z", idnatps=radiologist.idnatps)
    _appointment(agenda_world, patient_id, f"{day}T11:00:00Z")
    response = _agenda(agenda_world, "radiologist", patient_id)
    assert response.status_code == 200, response.text
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [theirs]
    # The patient sees both appointments and their reminders.
    own = _agenda(agenda_world, patient_id, patient_id).json()
    assert {e["resource"]["resourceType"] for e in own["entry"]} == {"Appointment", "CommunicationRequest"}
    assert theirs in {e["resource"]["id"] for e in own["entry"]}


def test_a_wrong_window_is_a_400(agenda_world: World) -> None:
    patient_id, _ = person(agenda_world, born(40, -20))
    for window in ({"start": "tomorrow"}, {"start": "2030-01-02", "end": "2030-01-01"}):
        response = _agenda(agenda_world, patient_id, patient_id, **window)
        assert response.status_code == 400, response.text
        assert response.json()["resourceType"] == "OperationOutcome"


def test_the_capability_statement_declares_it(agenda_world: World) -> None:
    statement = agenda_world.get("platform", "/metadata").json()
    assert {"name": "agenda", "definition": DEFINITION} in statement["rest"][0]["operation"]
    definition = orjson.loads((Path(__file__).resolve().parents[2] / "profiles" / "OperationDefinition"
                               / "OperationDefinition-Patient-agenda.json").read_bytes())
    assert definition["url"] == DEFINITION and definition["code"] == "agenda" and definition["instance"] is True
