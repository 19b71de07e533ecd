"""The record's lifecycle (issue 14) on one running server whose clock the tests move forward
(FHIR_CLOCK_FILE) without restarting it; `POST [base]/$lifecycle` (FHIR_LIFECYCLE_RUN=1) runs the
scheduler's round at once, as its lease holder does every FHIR_LIFECYCLE_SECONDS.

The clock only moves forward through the module (stamps order history): each test creates its
own people at the current day, then moves on. Deposits go through ITI-65 and HL7 v2 (MLLP) as a
hospital would make them; the patient and a parent act with their own tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_server.ingest.hl7v2.convert import convert_message
from tests.access.world import World, bundle_ids, is_refusal, new_finess, new_ins, open_world
from fhir_server.cli import main
from tests.hl7v2.conftest import FACILITY, personalised
from tests.hl7v2.test_server_endpoints import send
from tests.server_process import ServerProcess

BASE = "https://fhir-server.example.org/StructureDefinition/"
STATUS, NOTICE, CLOSED, DELETION = (BASE + n for n in ("record-status", "record-notice-sent", "record-closed",
                                                       "record-deletion-requested"))
INS_NIA = "urn:oid:1.2.250.1.213.1.4.10"
# Bytes over this go to GridFS on this module's server, so a purge must sweep them there too.
GRIDFS_THRESHOLD = 1024


class Clock:
    """The days the server lives ahead of the machine: written to its clock file by a rename, so
    the server reads a whole number, never half of one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.days = 0.0

    def advance(self, days: float) -> None:
        self.days += days
        partial = self.path.with_suffix(".part")
        partial.write_text(str(self.days), encoding="ascii")
        os.replace(partial, self.path)

    def now(self) -> str:
        return (datetime.now(UTC) + timedelta(days=self.days)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> Clock:
    return Clock(tmp_path_factory.mktemp("clock") / "offset-days")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, clock: Clock) -> Iterator[World]:
    server = ServerProcess(tmp_path_factory.mktemp("lifecycle") / "data", env={
        "FHIR_CLOCK_FILE": str(clock.path), "FHIR_LIFECYCLE_RUN": "1", "FHIR_GRIDFS_THRESHOLD": str(GRIDFS_THRESHOLD),
        # The round is run by the tests ($lifecycle); the background one must not race them.
        "FHIR_LIFECYCLE_SECONDS": "100000"}).start()
    world = open_world(server)
    world.system("H", new_finess())
    world.practitioner("A")
    # The fixtures' sending facility, as tests/hl7v2 registers it.
    assert main(["facilities", "add", "--server", server.root_url, "--token", server.token, *FACILITY]) == 0
    try:
        yield world
    finally:
        world.http.close()
        server.stop()


def run_round(world: World) -> dict[str, int]:
    response = world.request("platform", "POST", "/$lifecycle")
    assert response.status_code == 200, response.text
    return {p["name"]: p["valueInteger"] for p in response.json()["parameter"]}


def pending(world: World, clock: Clock, name: str, **patient: Any) -> str:
    """A Patient enrolled today (record pending, notice sent now) and their token under `name`."""
    ins = new_ins()
    resource = {"resourceType": "Patient", "identifier": [{"system": INS_NIA, "value": ins}],
                "name": [{"family": f"Cycle{world.unique}", "given": [name]}], "gender": "female",
                "birthDate": "1980-04-02", **patient,
                "extension": [{"url": STATUS, "valueCode": "pending"}, {"url": NOTICE, "valueDateTime": clock.now()}]}
    patient_id = world.create(resource)
    world.patient_caller(name, ins)
    world.consent(patient_id, "permit", world.professionals["A"])
    return patient_id


def active(world: World, name: str, *, documents: int = 1, data: bytes | None = None) -> str:
    """An active record with Dr A authorised and `documents` letters of hospital H."""
    patient_id, ins = world.patient()
    world.patient_caller(name, ins)
    world.consent(patient_id, "permit", world.professionals["A"])
    for n in range(documents):
        world.deposit(f"{name}-{n}", "H", patient_id, **({"data": data} if data else {}))
    return patient_id


def status_of(world: World, patient_id: str) -> str:
    patient = world.get("platform", f"/Patient/{patient_id}").json()
    # Without the extension, the record is active (docs/ACCESS-RULES.md).
    return next((e["valueCode"] for e in patient.get("extension", []) if e["url"] == STATUS), "active")


def extension(patient: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in patient.get("extension", []) if e["url"] == url), None)


def operation(world: World, caller: str, patient_id: str, name: str) -> httpx.Response:
    return world.request(caller, "POST", f"/Patient/{patient_id}/${name}")


def stored_documents(world: World, patient_id: str) -> set[str]:
    response = world.get("platform", "/DocumentReference", params={"patient": patient_id})
    assert response.status_code == 200, response.text
    return bundle_ids(response.json())


def audit_count(world: World, patient_id: str) -> int:
    response = world.get("platform", "/AuditEvent", params={"patient": f"Patient/{patient_id}", "_count": "1000"})
    assert response.status_code == 200, response.text
    return len(response.json().get("entry", []))


def outcome_says(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert words in " ".join(i.get("diagnostics", "") for i in body["issue"]), body


# -- enrolment: objection or activation ------------------------------------------------------------

def test_an_objection_at_day_41_holds_and_day_43_activates_the_others(world: World, clock: Clock) -> None:
    objector = pending(world, clock, "objector")
    silent = pending(world, clock, "silent")
    world.deposit("pending-letter", "H", objector)
    clock.advance(41)
    assert run_round(world)["activated"] == 0 or status_of(world, silent) == "pending"
    assert status_of(world, silent) == "pending"
    response = operation(world, "objector", objector, "object")
    assert response.status_code == 200, response.text
    assert extension(response.json(), STATUS) == {"url": STATUS, "valueCode": "opposed"}
    # The objection purges what was deposited while pending.
    assert stored_documents(world, objector) == set()
    clock.advance(2)
    assert run_round(world)["activated"] >= 1
    assert status_of(world, objector) == "opposed"
    assert status_of(world, silent) == "active"
    # Once active, the six weeks are over: closing is what is left.
    outcome_says(operation(world, "silent", silent, "object"), 422, "close it instead")
    # A second round finds nothing more to do for them.
    run_round(world)
    assert len(world.get("platform", f"/Patient/{silent}/_history").json()["entry"]) == 2


def test_nothing_is_stored_for_an_objector_on_any_channel(world: World, clock: Clock) -> None:
    tag = uuid.uuid4().hex[:8]
    message = personalised("oru_r01.hl7", tag)
    [entry] = [e for e in convert_message(message).bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    patient = entry["resource"]
    ins = next(i["value"] for i in patient["identifier"] if i["system"].endswith(".4.8") or i["system"].endswith(".4.10"))
    patient.pop("id", None)
    patient["extension"] = [{"url": STATUS, "valueCode": "pending"}, {"url": NOTICE, "valueDateTime": clock.now()}]
    patient_id = world.create(patient)
    world.patient_caller("hl7-objector", ins)
    clock.advance(41)
    assert operation(world, "hl7-objector", patient_id, "object").status_code == 200
    clock.advance(2)
    run_round(world)
    assert status_of(world, patient_id) == "opposed"
    refused = world.provide("H", patient_id)
    assert is_refusal(refused), refused.text
    [ack] = send(world.server, message)
    assert ack.text("MSA-1") == "AR", ack.text("ERR-8")
    assert "nothing is stored for them" in ack.text("ERR-8")
    assert stored_documents(world, patient_id) == set()


def test_a_parent_objects_for_their_newborn(world: World, clock: Clock) -> None:
    newborn = pending(world, clock, "newborn", birthDate=clock.now()[:10])
    parent = new_ins()
    world.representative(newborn, parent, "MTH")
    world.patient_caller("mother", parent, context=newborn)
    world.patient_caller("stranger", new_ins(), context=newborn)
    assert operation(world, "stranger", newborn, "object").status_code in (403, 404)
    response = operation(world, "mother", newborn, "object")
    assert response.status_code == 200, response.text
    assert status_of(world, newborn) == "opposed"


# -- closure, reopening, deletion -------------------------------------------------------------------

def test_closure_shuts_professionals_out_and_reopening_restores_everything(world: World, clock: Clock) -> None:
    patient = active(world, "closer")
    letter = world.documents["closer-0"]
    outcome_says(operation(world, "A", patient, "close"), 403, "Only the patient")
    response = operation(world, "closer", patient, "close")
    assert response.status_code == 200, response.text
    closed = response.json()
    assert extension(closed, STATUS)["valueCode"] == "closed"
    assert extension(closed, CLOSED)["valueDateTime"][:10] == clock.now()[:10]
    assert is_refusal(world.get("A", "/DocumentReference", params={"patient": patient}))
    assert is_refusal(world.provide("H", patient))
    mine = world.get("closer", "/DocumentReference", params={"patient": patient})
    assert mine.status_code == 200 and bundle_ids(mine.json()) == {letter.id}, mine.text
    outcome_says(operation(world, "closer", patient, "object"), 422, "cannot turn a closed record into opposed")
    clock.advance(400)
    response = operation(world, "closer", patient, "reopen")
    assert response.status_code == 200, response.text
    assert extension(response.json(), CLOSED) is None
    again = world.get("A", "/DocumentReference", params={"patient": patient})
    assert again.status_code == 200 and bundle_ids(again.json()) == {letter.id}, again.text
    assert world.get("A", f"/Binary/{letter.binary_id}", headers={"Accept": "*/*"}).status_code == 200


def test_a_deletion_request_purges_three_months_later(world: World, clock: Clock) -> None:
    # Larger than the GridFS threshold: the bytes live in GridFS and must go too.
    patient = active(world, "leaver", documents=2, data=b"%PDF-1.4\n" + os.urandom(4 * GRIDFS_THRESHOLD))
    letters = [world.documents["leaver-0"], world.documents["leaver-1"]]
    outcome_says(operation(world, "leaver", patient, "request-deletion"), 422, "close it first")
    assert operation(world, "leaver", patient, "close").status_code == 200
    response = operation(world, "leaver", patient, "request-deletion")
    assert response.status_code == 200, response.text
    assert extension(response.json(), DELETION)["valueDateTime"][:10] == clock.now()[:10]
    audit_before = audit_count(world, patient)
    assert audit_before > 0
    clock.advance(88)
    run_round(world)
    assert status_of(world, patient) == "closed"
    assert stored_documents(world, patient) == {d.id for d in letters}
    clock.advance(5)
    done = run_round(world)
    assert done["purged"] >= 1 and done["swept"] >= 1, done
    stub = world.get("platform", f"/Patient/{patient}").json()
    assert extension(stub, STATUS)["valueCode"] == "purged"
    assert "name" not in stub and stub["active"] is False
    assert INS_NIA in {i["system"] for i in stub["identifier"]}
    assert stored_documents(world, patient) == set()
    for letter in letters:
        assert world.get("platform", f"/DocumentReference/{letter.id}/_history/1").status_code == 404
        assert world.get("platform", f"/Binary/{letter.binary_id}").status_code == 404
    history = world.get("platform", f"/Patient/{patient}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == [stub["meta"]["versionId"]]
    # The audit trail stays.
    assert audit_count(world, patient) >= audit_before
    outcome_says(operation(world, "leaver", patient, "reopen"), 410, "nothing can be restored")
    assert is_refusal(world.provide("H", patient))
    # The person still reads what says their record is gone, nothing else.
    assert world.get("leaver", f"/Patient/{patient}").status_code == 200
    # And may start a new, empty record.
    response = operation(world, "leaver", patient, "activate")
    assert response.status_code == 200, response.text
    assert extension(response.json(), STATUS)["valueCode"] == "active" and "active" not in response.json()
    assert stored_documents(world, patient) == set()


def test_the_archive_ends_ten_years_after_closure(world: World, clock: Clock) -> None:
    patient = active(world, "archived")
    assert operation(world, "archived", patient, "close").status_code == 200
    clock.advance(3652 - 2)
    run_round(world)
    assert status_of(world, patient) == "closed"
    clock.advance(3)
    run_round(world)
    assert status_of(world, patient) == "purged"
    assert stored_documents(world, patient) == set()
    # The insurer's next roster names the person again: the stub stays as the purge left it.
    [ins] = [i for i in world.get("platform", f"/Patient/{patient}").json()["identifier"] if i["system"] == INS_NIA]
    line = {"resourceType": "Patient", "identifier": [ins], "name": [{"family": "Back", "given": ["Again"]}],
            "gender": "female", "birthDate": "1980-04-02",
            "telecom": [{"system": "email", "value": "back@example.org"}]}
    enrolled = world.request("platform", "POST", "/$enrol", content=json.dumps(line).encode() + b"\n",
                             headers={"Content-Type": "application/fhir+ndjson"})
    assert enrolled.status_code == 200, enrolled.text
    assert '"kept"' in enrolled.text, enrolled.text
    stub = world.get("platform", f"/Patient/{patient}").json()
    assert status_of(world, patient) == "purged" and "name" not in stub and "telecom" not in stub


# -- death -------------------------------------------------------------------------------------------

def _with_pid(message: bytes, values: dict[int, str]) -> bytes:
    segments = message.split(b"\r")
    for n, segment in enumerate(segments):
        if segment.startswith(b"PID|"):
            fields = segment.split(b"|")
            fields += [b""] * (max(values) + 1 - len(fields))
            for field, value in values.items():
                fields[field] = value.encode()
            segments[n] = b"|".join(fields)
    return b"\r".join(segments)


def closed_soon(world: World, patient_id: str) -> dict[str, Any]:
    """The Patient once its record is closed: right after the death's write commits (polled)."""
    deadline = time.monotonic() + 30
    while True:
        current = world.get("platform", f"/Patient/{patient_id}").json()
        if extension(current, STATUS) == {"url": STATUS, "valueCode": "closed"} or time.monotonic() > deadline:
            return current
        time.sleep(0.1)


def test_a_death_reported_by_adt_closes_the_record(world: World, clock: Clock) -> None:
    # PID-29 (death date) empty, PID-30 (death indicator) Y.
    message = _with_pid(personalised("adt_a08.hl7", uuid.uuid4().hex[:8]), {28: "", 29: "", 30: "Y"})
    converted = convert_message(message).bundle
    [patient] = [e["resource"] for e in converted["entry"] if e["resource"]["resourceType"] == "Patient"]
    alive = {k: v for k, v in patient.items() if k not in ("id", "deceasedBoolean")}
    alive["extension"] = [*alive.get("extension", []), {"url": STATUS, "valueCode": "active"}]
    patient_id = world.create(alive)
    world.consent(patient_id, "permit", world.professionals["A"])
    [ack] = send(world.server, message)
    assert ack.text("MSA-1") == "AA", ack.text("ERR-8")
    current = closed_soon(world, patient_id)
    assert current.get("deceasedBoolean") is True
    assert extension(current, STATUS)["valueCode"] == "closed"
    assert extension(current, CLOSED)["valueDateTime"][:10] == clock.now()[:10]
    assert is_refusal(world.get("A", "/DocumentReference", params={"patient": patient_id}))


def test_a_death_written_in_fhir_closes_the_record(world: World, clock: Clock) -> None:
    patient = active(world, "deceased", documents=0)
    current = world.get("H", f"/Patient/{patient}").json()
    current["deceasedDateTime"] = clock.now()[:10]
    response = world.request("H", "PUT", f"/Patient/{patient}", json=current)
    assert response.status_code == 200, response.text
    closed_soon(world, patient)
    assert is_refusal(world.provide("H", patient))
    # The server's closure is audited as the platform updating the Patient.
    events = world.get("platform", "/AuditEvent", params={"patient": f"Patient/{patient}", "_count": "1000"}).json()
    assert any(e["resource"]["subtype"][0]["code"] == "update"
               and e["resource"]["agent"][0]["who"].get("display") == "platform" for e in events["entry"]), events


# -- who may do what, and the counts ----------------------------------------------------------------

def test_what_the_patient_cannot_do_is_refused(world: World, clock: Clock) -> None:
    patient = active(world, "limits", documents=0)
    current = world.get("limits", f"/Patient/{patient}").json()
    current["extension"] = [{"url": STATUS, "valueCode": "pending"}]
    outcome_says(world.request("limits", "PUT", f"/Patient/{patient}", json=current), 422, "cannot turn an active record into pending")
    # Asked again (a retry), what is done stays done: no new version.
    assert operation(world, "limits", patient, "reopen").json()["meta"]["versionId"] == current["meta"]["versionId"]
    other = active(world, "neighbour", documents=0)
    assert operation(world, "limits", other, "close").status_code in (403, 404)
    assert status_of(world, other) == "active"
    outcome_says(operation(world, "H", patient, "close"), 403, "Only the patient")
    # A closure date sent by the patient is not theirs to choose.
    current = world.get("limits", f"/Patient/{patient}").json()
    current["extension"] = [{"url": STATUS, "valueCode": "closed"}, {"url": CLOSED, "valueDateTime": "2001-01-01"}]
    response = world.request("limits", "PUT", f"/Patient/{patient}", json=current)
    assert response.status_code == 200, response.text
    assert extension(response.json(), CLOSED)["valueDateTime"][:10] == clock.now()[:10]


def test_operators_count_records_by_status(world: World, clock: Clock) -> None:
    def count(status: str) -> int:
        response = world.get("platform", "/Patient", params={"record-status": status, "_summary": "count"})
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    before = {s: count(s) for s in ("pending", "opposed")}
    pending(world, clock, "counted")
    assert count("pending") == before["pending"] + 1
    assert count("opposed") == before["opposed"] and before["opposed"] >= 2
    statement = world.get("platform", "/metadata").json()
    [patient] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    assert "record-status" in {p["name"] for p in patient.get("searchParam", [])}
    printed = subprocess.run([sys.executable, "-m", "fhir_server.cli", "status", "--data-dir", str(world.server.data_dir),
                              "--json"], capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    import json
    counts = json.loads(printed.stdout)
    assert counts["pending"] == count("pending") and counts["opposed"] == count("opposed")
    assert counts["purged"] >= 1 and counts["closed"] >= 3
