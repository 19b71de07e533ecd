"""One server for the agenda tests with prevention reminders on (the session's server has them
off: they write for every adult Patient), a mail scan every second, and an SMTP server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from fhir_server.agenda.prevention import birthday
from tests.access.world import INS_NIA, World, new_ins, open_world
from tests.events.test_mail_notifications import Mailbox, smtp_server
from tests.server_process import ServerProcess, free_port

REMINDER_SYSTEM = "https://fhir-server.example.org/prevention-rule"
OPT_OUT = "https://fhir-server.example.org/StructureDefinition/prevention-reminders"
TIMEOUT = 30.0


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    controller, box = smtp_server(free_port())
    yield box
    controller.stop()


@pytest.fixture(scope="session")
def agenda_world(mailbox: Mailbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = ServerProcess(tmp_path_factory.mktemp("agenda") / "data", env={
        "FHIR_PREVENTION_REMINDERS": "1", "FHIR_VISIBILITY_SCAN_SECONDS": "1",
        "FHIR_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}"}).start()
    world = open_world(server)
    yield world
    world.http.close()
    server.stop()


def born(age: int, days: int) -> str:
    """The birth date of someone whose `age`-th birthday is `days` from today (negative: past)."""
    today = date.today()
    guess = date(today.year - age, today.month, min(today.day, 28)) + timedelta(days=days)
    # Walk to the exact day whose birthday(age) is today + days.
    while birthday(guess, age) < today + timedelta(days=days):
        guess += timedelta(days=1)
    while birthday(guess, age) > today + timedelta(days=days):
        guess -= timedelta(days=1)
    return guess.isoformat()


def person(world: World, birth_date: str, gender: str = "female", email: str | None = None,
           name: str = "Prev") -> tuple[str, str]:
    """A Patient with an INS, and its patient token under its id; returns (id, INS)."""
    ins = new_ins()
    resource: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": f"{name}{world.unique}"}],
                                "identifier": [{"system": INS_NIA, "value": ins}], "gender": gender,
                                "birthDate": birth_date}
    if email:
        resource["telecom"] = [{"system": "email", "value": email}]
    patient_id = world.create(resource)
    world.patient_caller(patient_id, ins)
    return patient_id, ins


def reminders(world: World, patient_id: str, caller: str = "platform") -> dict[str, dict[str, Any]]:
    """The patient's prevention reminders by rule id."""
    bundle = world.get(caller, "/CommunicationRequest", params={"subject": f"Patient/{patient_id}",
                                                                "_count": "100"}).json()
    found = {}
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        rule = next((i["value"] for i in resource.get("identifier", []) if i.get("system") == REMINDER_SYSTEM), None)
        if rule:
            found[rule] = resource
    return found


def wait_until(check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"not within {timeout}s"
            return result
        time.sleep(0.2)


def due_dates(world: World, patient_id: str, until: str) -> dict[str, str]:
    """Rule id -> due date, once the reminders include rule `until` (they are written after commit)."""
    found = wait_until(lambda: (r := reminders(world, patient_id)) and until in r and r)
    return {rule: resource["occurrenceDateTime"] for rule, resource in found.items()}
