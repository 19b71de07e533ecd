"""Prevention reminders (issue 15, policies/prevention-reminders.json): computed from age, sex and
what the record shows, at the age boundaries, reset by existing data, dismissed by the patient,
removed on opt-out, and e-mailed when due."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

import pytest

from fhir_server.agenda.prevention import birthday, plus_months
from tests.access.world import World
from tests.agenda.conftest import OPT_OUT, born, due_dates, person, reminders, wait_until
from tests.events.test_mail_notifications import Mailbox, wait_for

CVX = "http://hl7.org/fhir/sid/cvx"
SCT = "http://snomed.info/sct"


def _due(world: World, patient_id: str, rule: str) -> str:
    return str(reminders(world, patient_id).get(rule, {}).get("occurrenceDateTime", ""))


def _vaccinated(world: World, patient_id: str) -> None:
    """A Tdap dose today."""
    world.create({"resourceType": "Immunization", "status": "completed",
                  "patient": {"reference": f"Patient/{patient_id}"}, "occurrenceDateTime": date.today().isoformat(),
                  "vaccineCode": {"coding": [{"system": CVX, "code": "115", "display": "Tdap"}]}})


def on(birth_date: str, age: int) -> str:
    return birthday(date.fromisoformat(birth_date), age).isoformat()


@pytest.mark.parametrize(("age", "days", "present", "absent"), [
    # 24 with the 25th birthday in 100 days: the booster with pertussis and the first cytology fall
    # due on that birthday; at 25 (10 days ago) they are due already. Every rule still to come has
    # its reminder on the date it starts (the agenda's window chooses what is shown).
    (25, 100, {"dtp-booster": 25, "cervical-cytology": 25, "bilan-prevention-18-25": 18, "breast-screening": 50},
     set()),
    (25, -10, {"dtp-booster": 25, "cervical-cytology": 25, "bilan-prevention-18-25": 18, "cervical-hpv": 30}, set()),
    # 49 and 50: breast and colorectal screening start on the 50th birthday.
    (50, 100, {"breast-screening": 50, "colorectal-screening": 50, "bilan-prevention-45-50": 45},
     {"cervical-cytology", "bilan-prevention-18-25"}),
    (50, -10, {"breast-screening": 50, "colorectal-screening": 50, "bilan-prevention-45-50": 45},
     {"cervical-cytology", "bilan-prevention-18-25"}),
    # 74 and 75: screenings end at the 75th birthday, RSV vaccination starts then.
    (75, 100, {"breast-screening": 50, "colorectal-screening": 50, "rsv-75": 75, "bilan-prevention-70-75": 70},
     {"cervical-hpv", "bilan-prevention-60-65"}),
    (75, -10, {"rsv-75": 75, "bilan-prevention-70-75": 70, "influenza-65": 65},
     {"breast-screening", "colorectal-screening", "cervical-hpv", "bilan-prevention-60-65"}),
])
def test_age_boundaries(agenda_world: World, age: int, days: int, present: dict[str, int], absent: set[str]) -> None:
    birth_date = born(age, days)
    patient_id, _ = person(agenda_world, birth_date)
    found = due_dates(agenda_world, patient_id, next(iter(present)))
    assert {rule: found.get(rule) for rule in present} == {rule: on(birth_date, a) for rule, a in present.items()}
    assert not absent & set(found), found
    reminder = reminders(agenda_world, patient_id)[next(iter(present))]
    assert reminder["status"] == "active" and reminder["subject"] == {"reference": f"Patient/{patient_id}"}
    assert reminder["payload"][0]["contentString"]


def test_men_get_no_breast_or_cervical_screening(agenda_world: World) -> None:
    patient_id, _ = person(agenda_world, born(55, -30), gender="male")
    found = due_dates(agenda_world, patient_id, "colorectal-screening")
    assert not {"breast-screening", "cervical-hpv"} & set(found)


def test_what_the_record_shows_resets_the_clock(agenda_world: World) -> None:
    """A screening mammography a year ago postpones the breast-screening reminder to a year from
    now; a dTP booster given today moves the next booster to 65."""
    birth_date = born(55, -30)
    patient_id, _ = person(agenda_world, birth_date)
    assert due_dates(agenda_world, patient_id, "breast-screening")["breast-screening"] == on(birth_date, 50)
    last_year = (date.today() - timedelta(days=365)).isoformat()
    agenda_world.create({"resourceType": "Procedure", "status": "completed",
                         "subject": {"reference": f"Patient/{patient_id}"}, "performedDateTime": last_year,
                         "code": {"coding": [{"system": SCT, "code": "24623002", "display": "Screening mammography"}]}})
    expected = plus_months(date.fromisoformat(last_year), 24).isoformat()
    wait_until(lambda: _due(agenda_world, patient_id, "breast-screening") == expected)
    _vaccinated(agenda_world, patient_id)
    wait_until(lambda: _due(agenda_world, patient_id, "dtp-booster") == on(birth_date, 65))
    # The reminders are those of today's rules only: one per rule.
    assert len(reminders(agenda_world, patient_id)) == len(set(reminders(agenda_world, patient_id)))


def _put(world: World, caller: str, resource: dict[str, Any]) -> Any:
    return world.request(caller, "PUT", f"/{resource['resourceType']}/{resource['id']}", json=resource)


def test_the_patient_dismisses_a_reminder_and_it_stays_dismissed(agenda_world: World) -> None:
    patient_id, _ = person(agenda_world, born(51, -30))
    due_dates(agenda_world, patient_id, "colorectal-screening")
    reminder = reminders(agenda_world, patient_id)["colorectal-screening"]
    rewritten = _put(agenda_world, patient_id, {**reminder, "payload": [{"contentString": "autre chose"}]})
    assert rewritten.status_code == 403, rewritten.text
    dismissed = _put(agenda_world, patient_id, {**reminder, "status": "revoked"})
    assert dismissed.status_code == 200, dismissed.text
    # New data recomputes the reminders: the dismissed one is kept as the patient left it.
    _vaccinated(agenda_world, patient_id)
    wait_until(lambda: _due(agenda_world, patient_id, "dtp-booster") > "2030")
    assert reminders(agenda_world, patient_id)["colorectal-screening"]["status"] == "revoked"
    # Nobody else writes reminders, the patient creates none.
    other_id, _ = person(agenda_world, born(30, -30))
    forged = agenda_world.request(patient_id, "POST", "/CommunicationRequest", json={
        **{k: v for k, v in reminder.items() if k not in ("id", "meta")}, "status": "active"})
    assert forged.status_code == 403, forged.text
    assert other_id not in str(reminders(agenda_world, patient_id))


def test_opting_out_removes_the_reminders(agenda_world: World) -> None:
    patient_id, _ = person(agenda_world, born(66, -30))
    due_dates(agenda_world, patient_id, "influenza-65")
    current = agenda_world.get(patient_id, f"/Patient/{patient_id}").json()
    current["extension"] = [*current.get("extension", []), {"url": OPT_OUT, "valueBoolean": False}]
    assert _put(agenda_world, patient_id, current).status_code == 200
    wait_until(lambda: reminders(agenda_world, patient_id) == {})
    # Opting in again brings them back.
    current = agenda_world.get(patient_id, f"/Patient/{patient_id}").json()
    current["extension"] = [e for e in current["extension"] if e["url"] != OPT_OUT]
    assert _put(agenda_world, patient_id, current).status_code == 200
    due_dates(agenda_world, patient_id, "influenza-65")


def test_a_due_reminder_sends_one_email_and_a_future_one_none(agenda_world: World, mailbox: Mailbox) -> None:
    """The dTP booster came due 3 days ago: one e-mail. The other person's comes due in 200 days,
    and their overdue reminders (Mon bilan prévention 18-25) were overdue when first computed: no
    e-mail (they are in the agenda)."""
    due_now = f"due-{agenda_world.unique}@example.org"
    later = f"later-{agenda_world.unique}@example.org"
    future_id, _ = person(agenda_world, born(25, 200), gender="male", email=later)
    due_dates(agenda_world, future_id, "dtp-booster")
    patient_id, _ = person(agenda_world, born(25, -3), gender="male", email=due_now)
    due_dates(agenda_world, patient_id, "dtp-booster")
    [message] = wait_for(lambda: mailbox.to(due_now))
    assert "Rappel de prévention" in message["Subject"]
    assert "tétanos" in message.get_content()
    # The scan that mailed it had the other person's reminders already.
    time.sleep(2)
    assert mailbox.to(later) == []
    assert len(mailbox.to(due_now)) == 1
