"""Patient e-mail notifications (issue 13), seen where people see them: in the mailbox of a real
SMTP server (aiosmtpd) started by the test, or in the mail spool when no SMTP server is set.

- A document deposited visible: one e-mail to the patient. INVISIBLE_PATIENT: none until its
  month has passed, then one. To reach that day without waiting a month, a server is restarted
  on the same data with FHIR_CLOCK_OFFSET_DAYS, which moves every "now" of the server (the access
  rules' included) a month on: the document the patient now reads is the one they are told about.
- Emergency access: one e-mail to the patient and one to the médecin traitant.
- SMTP down: messages wait in the store, across a restart, and go once it is back.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.access.world import World, new_finess, open_world
from tests.api.test_store_lifecycle import store_url
from tests.server_process import ServerProcess, free_port

TRE_A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
# Long enough for a retry after the SMTP server comes back (5 s, 10 s, 20 s...).
TIMEOUT = 60.0


@dataclass
class Mailbox:
    """What an SMTP server received."""
    messages: list[EmailMessage] = field(default_factory=list)
    port: int = 0
    # Seconds each message takes to be accepted: a slow server, while which another sender could act.
    delay: float = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        await asyncio.sleep(self.delay)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in m["X-Envelope-To"].split(", ")]


def smtp_server(port: int, delay: float = 0.0) -> tuple[Controller, Mailbox]:
    mailbox = Mailbox(delay=delay)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.port = port
    return controller, mailbox


def wait_for(found: Callable[[], list[Any]], count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(got := found()) >= count:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{len(found())} of {count} e-mails within {timeout}s")


def address(world: World, name: str) -> str:
    return f"{name}-{world.unique}@example.org"


def patient(world: World, name: str, *, doctor: str | None = None, email_address: bool = True) -> str:
    resource: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": f"Mail{world.unique}", "given": [name]}],
                                "birthDate": "1980-03-04"}
    if email_address:
        resource["telecom"] = [{"system": "phone", "value": "0600000000"},
                               {"system": "email", "value": address(world, name)}]
    if doctor is not None:
        resource["generalPractitioner"] = [{"reference": f"Practitioner/{doctor}"}]
    return world.create(resource)


def doctor(world: World, name: str) -> str:
    """A practitioner with an e-mail address, and their token under `name`."""
    professional = world.practitioner(name)
    current = world.get("platform", f"/Practitioner/{professional.practitioner_id}").json()
    current["telecom"] = [{"system": "email", "value": address(world, name)}]
    assert world.request("platform", "PUT", f"/Practitioner/{professional.practitioner_id}", json=current).status_code == 200
    return professional.practitioner_id


def invisible(world: World, key: str, patient_id: str) -> str:
    return world.deposit(key, "H", patient_id, labels=("INVISIBLE_PATIENT",)).id


def patient_reads(world: World, patient_id: str, document_id: str) -> int:
    """What the patient's own token gets for the document (a patient caller named by their INS)."""
    ins = f"2{abs(hash(patient_id)) % 10**14:014d}"
    current = world.get("platform", f"/Patient/{patient_id}").json()
    if not any(i.get("value") == ins for i in current.get("identifier", [])):
        current["identifier"] = [*current.get("identifier", []), {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": ins}]
        assert world.request("platform", "PUT", f"/Patient/{patient_id}", json=current).status_code == 200
    world.patient_caller(f"patient-{patient_id}", ins, patient_id)
    return world.get(f"patient-{patient_id}", f"/DocumentReference/{document_id}").status_code


def restarted(server: ServerProcess, env: dict[str, str]) -> ServerProcess:
    """The same server (data, ports, so its tokens stay valid) started again with `env`."""
    server.stop()
    again = ServerProcess(server.data_dir, port=server.port, mllp_port=server.mllp_port, env=env)
    return again.start()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    controller, box = smtp_server(free_port())
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def world(mailbox: Mailbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = ServerProcess(tmp_path_factory.mktemp("mail") / "data",
                           env={"FHIR_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}"}).start()
    world = open_world(server)
    world.system("H", new_finess())
    yield world
    world.http.close()
    server.stop()


def test_a_deposit_sends_the_patient_one_email(world: World, mailbox: Mailbox) -> None:
    patient_id = patient(world, "ana")
    document = world.deposit("ana-letter", "H", patient_id)
    [message] = wait_for(lambda: mailbox.to(address(world, "ana")))
    assert "Nouveau document" in message["Subject"] and "New document" in message["Subject"]
    body = message.get_content()
    assert "Lettre de liaison de sortie" in body
    # A notification, not the document: nothing of its content or its address in the record.
    assert "%PDF" not in message.as_string() and document.id not in message.as_string()
    assert message["Message-ID"] and message["Auto-Submitted"] == "auto-generated"
    # An update of the document is no new document.
    current = world.get("platform", f"/DocumentReference/{document.id}").json()
    current["description"] = "corrigé"
    assert world.request("H", "PUT", f"/DocumentReference/{document.id}", json=current).status_code == 200
    world.deposit("ana-barrier", "H", patient(world, "ana-barrier"))
    wait_for(lambda: mailbox.to(address(world, "ana-barrier")))
    assert len(mailbox.to(address(world, "ana"))) == 1


def test_a_patient_without_an_address_gets_nothing_and_the_others_still_do(world: World, mailbox: Mailbox) -> None:
    silent = patient(world, "silent", email_address=False)
    world.deposit("silent-letter", "H", silent)
    world.deposit("after-silent", "H", patient(world, "after-silent"))
    wait_for(lambda: mailbox.to(address(world, "after-silent")))
    assert mailbox.to(address(world, "silent")) == []


def test_an_updated_document_is_no_new_document(world: World, mailbox: Mailbox) -> None:
    """The patient had no address when the document came; they add one; an update of the
    document later tells them nothing."""
    patient_id = patient(world, "late", email_address=False)
    document = world.deposit("late-letter", "H", patient_id)
    current = world.get("platform", f"/Patient/{patient_id}").json()
    current["telecom"] = [{"system": "email", "value": address(world, "late")}]
    assert world.request("platform", "PUT", f"/Patient/{patient_id}", json=current).status_code == 200
    letter = world.get("platform", f"/DocumentReference/{document.id}").json()
    letter["description"] = "corrigé"
    assert world.request("H", "PUT", f"/DocumentReference/{document.id}", json=letter).status_code == 200
    world.deposit("late-barrier", "H", patient(world, "late-barrier"))
    wait_for(lambda: mailbox.to(address(world, "late-barrier")))
    assert mailbox.to(address(world, "late")) == []


def test_removing_the_invisible_label_early_sends_the_email_then(world: World, mailbox: Mailbox) -> None:
    patient_id = patient(world, "early")
    document_id = invisible(world, "early-letter", patient_id)
    world.deposit("early-barrier", "H", patient(world, "early-barrier"))
    wait_for(lambda: mailbox.to(address(world, "early-barrier")))
    assert mailbox.to(address(world, "early")) == []
    current = world.get("platform", f"/DocumentReference/{document_id}").json()
    current["securityLabel"] = [c for c in current["securityLabel"]
                                if not any(x.get("code") == "INVISIBLE_PATIENT" for x in c.get("coding", []))]
    assert world.request("H", "PUT", f"/DocumentReference/{document_id}", json=current).status_code == 200
    wait_for(lambda: mailbox.to(address(world, "early")))
    assert patient_reads(world, patient_id, document_id) == 200


def test_a_minors_parents_are_told_unless_the_document_is_invisible_to_them(world: World, mailbox: Mailbox) -> None:
    minor = world.create({"resourceType": "Patient", "name": [{"family": f"Mail{world.unique}", "given": ["kid"]}],
                          "birthDate": "2019-01-01"})
    for name, relationship in (("mum", "MTH"), ("friend", "FRND")):
        world.create({"resourceType": "RelatedPerson", "patient": {"reference": f"Patient/{minor}"},
                      "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                                    "code": relationship}]}],
                      "telecom": [{"system": "email", "value": address(world, name)}]})
    world.deposit("kid-letter", "H", minor)
    [message] = wait_for(lambda: mailbox.to(address(world, "mum")))
    assert "Nouveau document" in message["Subject"]
    world.deposit("kid-secret", "H", minor, labels=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    world.deposit("kid-barrier", "H", patient(world, "kid-barrier"))
    wait_for(lambda: mailbox.to(address(world, "kid-barrier")))
    assert len(mailbox.to(address(world, "mum"))) == 1 and mailbox.to(address(world, "friend")) == []


def test_breaking_the_glass_tells_the_patient_and_the_medecin_traitant(world: World, mailbox: Mailbox) -> None:
    gp = doctor(world, "gp")
    world.practitioner("er")
    world.emergency("er_btg", "er")
    patient_id = patient(world, "zoe", doctor=gp)
    world.deposit("zoe-letter", "H", patient_id)
    wait_for(lambda: mailbox.to(address(world, "zoe")))
    assert world.get("er", "/DocumentReference", params={"patient": patient_id}).status_code == 403
    for _ in range(3):
        assert world.get("er_btg", "/DocumentReference", params={"patient": patient_id}).status_code == 200
    [to_doctor] = wait_for(lambda: mailbox.to(address(world, "gp")))
    [_, to_patient] = wait_for(lambda: mailbox.to(address(world, "zoe")), 2)
    assert "urgence" in to_patient["Subject"] and "Emergency" in to_patient["Subject"]
    assert "urgence" in to_doctor["Subject"] and f"Mail{world.unique}" in to_doctor.get_content()
    assert world.professionals["er"].idnatps in to_patient.get_content()
    # Three reads of one emergency access: one e-mail each, not three.
    world.deposit("zoe-barrier", "H", patient(world, "zoe-barrier"))
    wait_for(lambda: mailbox.to(address(world, "zoe-barrier")))
    assert len(mailbox.to(address(world, "zoe"))) == 2 and len(mailbox.to(address(world, "gp"))) == 1


def test_an_invisible_document_is_told_on_the_day_it_becomes_visible(tmp_path: Path) -> None:
    controller, mailbox = smtp_server(free_port())
    env = {"FHIR_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    world = open_world(server)
    try:
        world.system("H", new_finess())
        patient_id = patient(world, "ivy")
        document_id = invisible(world, "ivy-letter", patient_id)
        world.deposit("ivy-barrier", "H", patient(world, "ivy-barrier"))
        wait_for(lambda: mailbox.to(address(world, "ivy-barrier")))
        assert mailbox.to(address(world, "ivy")) == []
        assert patient_reads(world, patient_id, document_id) == 404
        # A month and a day later.
        server = restarted(server, {**env, "FHIR_CLOCK_OFFSET_DAYS": "32"})
        [message] = wait_for(lambda: mailbox.to(address(world, "ivy")))
        assert "Nouveau document" in message["Subject"]
        assert patient_reads(world, patient_id, document_id) == 200
        # Told once: not again after another restart.
        server = restarted(server, {**env, "FHIR_CLOCK_OFFSET_DAYS": "33"})
        world.deposit("ivy-barrier-2", "H", patient(world, "ivy-barrier-2"))
        wait_for(lambda: mailbox.to(address(world, "ivy-barrier-2")))
        assert len(mailbox.to(address(world, "ivy"))) == 1
    finally:
        world.http.close()
        server.stop()
        controller.stop()


def test_messages_wait_while_smtp_is_down_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    env = {"FHIR_SMTP_URL": f"smtp://127.0.0.1:{port}"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    world = open_world(server)
    controller = None
    try:
        world.system("H", new_finess())
        world.deposit("before", "H", patient(world, "before"))
        time.sleep(2)
        server = restarted(server, env)
        world.deposit("after", "H", patient(world, "after"))
        time.sleep(2)
        controller, mailbox = smtp_server(port)
        wait_for(lambda: mailbox.to(address(world, "before")))
        wait_for(lambda: mailbox.to(address(world, "after")))
        time.sleep(1)
        assert len(mailbox.to(address(world, "before"))) == 1 and len(mailbox.to(address(world, "after"))) == 1
        assert "not sent" in server.log_path.read_text()
    finally:
        world.http.close()
        server.stop()
        if controller is not None:
            controller.stop()


def test_without_smtp_each_message_is_a_file_in_the_spool(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    world = open_world(server)
    try:
        world.system("H", new_finess())
        world.deposit("spooled", "H", patient(world, "spooled"))
        spool = tmp_path / "data" / "mail-spool"
        [path] = wait_for(lambda: list(spool.glob("*.eml")) if spool.exists() else [])
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["To"] == address(world, "spooled")
        assert "Nouveau document" in message["Subject"]
        assert "Lettre de liaison de sortie" in message.get_content()
    finally:
        world.http.close()
        server.stop()


def test_two_processes_on_one_store_send_each_message_once(tmp_path: Path) -> None:
    """Both serve HTTP and queue; one at a time sends (its lease), whichever took the deposit."""
    port = free_port()
    env = {"FHIR_SMTP_URL": f"smtp://127.0.0.1:{port}"}
    first = ServerProcess(tmp_path / "data", env=env).start()
    second = None
    controller = None
    worlds: list[World] = []
    try:
        second = ServerProcess(tmp_path / "data", env={**env, "MONGODB_URL": store_url(tmp_path / "data")}).start()
        worlds = [open_world(first), open_world(second)]
        for world in worlds:
            world.system("H", new_finess())
        names = []
        for index in range(6):
            world = worlds[index % 2]
            names.append(address(world, f"two-{index}"))
            world.deposit(f"two-{index}", "H", patient(world, f"two-{index}"))
        controller, mailbox = smtp_server(port, delay=0.5)
        for name in names:
            wait_for(lambda: mailbox.to(name))
        time.sleep(2)  # more rounds of both workers: a second sending would show by now
        assert sorted(m["X-Envelope-To"] for m in mailbox.messages) == sorted(names)
    finally:
        for world in worlds:
            world.http.close()
        if second is not None:
            second.stop()
        first.stop()
        if controller is not None:
            controller.stop()


@pytest.mark.parametrize("setting", [{"FHIR_SMTP_URL": "http://mail.example.org"},
                                     {"FHIR_SMTP_URL": "smtp://mail.example.org:port"},
                                     {"FHIR_MAIL_FROM": "nobody"}])
def test_unusable_mail_settings_stop_the_start_with_a_message(tmp_path: Path, setting: dict[str, str]) -> None:
    server = ServerProcess(tmp_path / "data", env=setting)
    with pytest.raises(RuntimeError) as failed:
        server.start(timeout=30)
    assert next(iter(setting)) in str(failed.value)


def test_advance_directives_remind_their_author_once_a_year(tmp_path: Path) -> None:
    """CSP R.1111-19: a reminder of their existence is regularly sent to their author; issue 23:
    yearly by default. Nothing before the year has passed, one after it, not two."""
    controller, mailbox = smtp_server(free_port())
    env = {"FHIR_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}", "FHIR_VISIBILITY_SCAN_SECONDS": "1"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    world = open_world(server)
    try:
        patient_id = patient(world, "dana")
        world.create({"resourceType": "DocumentReference", "status": "current",
                      "type": {"coding": [{"system": "http://loinc.org", "code": "42348-3"}]},
                      "subject": {"reference": f"Patient/{patient_id}"},
                      "author": [{"reference": f"Patient/{patient_id}"}], "date": "2026-01-15T10:00:00+01:00",
                      "content": [{"attachment": {"contentType": "application/pdf", "url": "http://example.org/dana.pdf",
                                                  "title": "Directives anticipées"}}]})
        # The deposit's own e-mail first: after it, a scan has had its chance to remind too early.
        wait_for(lambda: mailbox.to(address(world, "dana")))
        time.sleep(3)
        assert [m for m in mailbox.to(address(world, "dana")) if "Rappel" in m["Subject"]] == []
        # A year and a day later.
        server = restarted(server, {**env, "FHIR_CLOCK_OFFSET_DAYS": "366"})
        [reminder] = wait_for(lambda: [m for m in mailbox.to(address(world, "dana")) if "Rappel" in m["Subject"]])
        assert "directives anticipées" in reminder["Subject"]
        time.sleep(3)
        assert len([m for m in mailbox.to(address(world, "dana")) if "Rappel" in m["Subject"]]) == 1
    finally:
        world.http.close()
        server.stop()
        controller.stop()
