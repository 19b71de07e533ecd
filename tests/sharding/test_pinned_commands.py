"""Proof without a cluster (issue 25): every command a patient-scoped request sends to a
collection sharded by the plan (policies/sharding.json) names its shard key, so a mongos would
send it to one shard (or a few: a short `$in`), never to all.

One server records every command (FHIR_COMMAND_LOG, fhir_server/storage/command_log.py) while
the requests below run, each with a real token: a practitioner the patient authorised (the record
opens through the access rules: Patient and Consent reads), a stranger refused, the same stranger
breaking the glass, the patient, an insurer, the platform, a hospital over HL7 v2 and CDA. Each
scenario's commands are those sent while its requests ran and labelled with a request (background
workers, which read across shards by design, record none); tests/sharding/pinning.py judges them.

With SHARDING_REPORT=<file>, the commands that would reach every shard are also written there,
with the request and the code that sent them (a working list for whoever routes them).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.cli import main as cli
from fhir_server.definitions import structure
from fhir_server.ingest.hl7v2 import er7
from fhir_server.storage.sharding import shard_plan
from tests.access.claims import eob
from tests.access.world import INS_NIA, RECORD_STATUS, World, new_finess, now, open_world
from tests.hl7v2.conftest import FACILITY, personalised, personalised_cda
from tests.hl7v2.test_server_endpoints import send
from tests.ingest.record_status import hospital_headers
from tests.mhd.documents import PDF, document_reference, provide_bundle
from tests.server_process import dedicated_server, free_port, server_token
from tests.sharding.pinning import sharded_collections, unpinned

PATCH = {"Content-Type": "application/json-patch+json"}
LOINC = "http://loinc.org"


# What a step's request got: an HTTP status or an HL7 v2 acknowledgement code, and the text.
Outcome = tuple[int | str, str]


@dataclass
class Recorded:
    """What one scenario's requests got, and the store commands they sent."""

    outcomes: list[Outcome] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)


def http(response: httpx.Response) -> Outcome:
    return response.status_code, response.text[:300]


def mllp(ack: er7.Message) -> Outcome:
    return ack.text("MSA-1"), ack.text("ERR-8")


class Scenarios:
    """The patient-scoped requests, each kind once, in an order where each finds what it needs:
    a practitioner the patient authorised unless the name says otherwise."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.patient_id, self.ins = world.patient()
        self.doctor = world.practitioner("doctor")
        world.practitioner("stranger")
        world.emergency("emergency", of="stranger")
        world.patient_caller("patient", self.ins)
        world.tokens["insurer"] = server_token(world.server.data_dir, world.server.base_url, "system",
                                               organization=new_finess(), role="insurer")
        self.observation_id = ""
        self.document_id = ""
        self.binary_id = ""
        self.tag = uuid.uuid4().hex[:8]
        self.master_id = f"1.2.250.1.999.1.1.7.{int(self.tag, 16)}"
        self.consent_id = ""

    def observation(self, value: int, observation_id: str | None = None) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{self.patient_id}"},
            "effectiveDateTime": now(), "valueQuantity": {"value": value, "unit": "/min"}}
        if observation_id:
            resource["id"] = observation_id
        return resource

    def steps(self) -> dict[str, Callable[[], list[Outcome]]]:
        w, patient, server = self.world, self.patient_id, self.world.server
        observation = lambda: f"/Observation/{self.observation_id}"  # noqa: E731 - known once created
        doctor = lambda method, path, **kw: http(w.request("doctor", method, path, **kw))  # noqa: E731
        return {
            "authorisation (Consent write, platform)": lambda: [self._consented()],
            "create": lambda: [self._created(w.request("doctor", "POST", "/Observation", json=self.observation(72)))],
            "conditional create": lambda: [doctor("POST", "/Observation", json=self._identified(), headers={
                "If-None-Exist": f"identifier=urn:oid:1.2.250.1.999|{self.tag}"}) for _ in range(2)],
            "read": lambda: [doctor("GET", observation())],
            "vread": lambda: [doctor("GET", f"{observation()}/_history/1")],
            "update": lambda: [doctor("PUT", observation(), json=self.observation(75, self.observation_id))],
            "patch": lambda: [doctor("PATCH", observation(), headers=PATCH, content=orjson.dumps(
                [{"op": "replace", "path": "/valueQuantity/value", "value": 80}]))],
            "update with If-Match": lambda: [doctor("PUT", observation(), json=self.observation(78, self.observation_id),
                                                    headers={"If-Match": 'W/"3"'})],
            "conditional update by identifier": lambda: [doctor(
                "PUT", f"/Observation?identifier=urn:oid:1.2.250.1.999|{self.tag}", json=self._identified())],
            "history (instance)": lambda: [doctor("GET", f"{observation()}/_history")],
            "search by patient": lambda: [doctor("GET", f"/Observation?patient={patient}")],
            "search by subject": lambda: [doctor("GET", f"/Observation?subject=Patient/{patient}")],
            "search by patient (POST _search)": lambda: [doctor(
                "POST", "/Observation/_search", content=f"patient={patient}".encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"})],
            "compartment search": lambda: [doctor("GET", f"/Patient/{patient}/Observation")],
            "_include": lambda: [doctor("GET", f"/Observation?patient={patient}&_include=Observation:subject")],
            "_revinclude": lambda: [doctor("GET", f"/Patient?_id={patient}&_revinclude=Observation:subject")],
            "read the Patient": lambda: [doctor("GET", f"/Patient/{patient}")],
            "transaction for one patient": lambda: [doctor("POST", "", json=self._transaction())],
            "ITI-65 document submission": lambda: [self._provided(w.provide("doctor", patient, author=self.doctor))],
            "ITI-65 replacing a document": lambda: [self._replaced()],
            "ITI-67 document search": lambda: [doctor("GET", f"/DocumentReference?patient={patient}")],
            "ITI-67 document search by INS": lambda: [doctor(
                "GET", f"/DocumentReference?patient.identifier={INS_NIA}|{self.ins}")],
            "ITI-68 document retrieval": lambda: [doctor("GET", f"/DocumentReference/{self.document_id}"),
                                                  doctor("GET", f"/Binary/{self.binary_id}")],
            "ITI-105 simplified publish": lambda: [doctor("POST", "/DocumentReference", json=self._published())],
            "PDSm metadata update (conditional patch by identifier)": lambda: [doctor(
                "PATCH", f"/DocumentReference?identifier=urn:ietf:rfc:3986|urn:oid:{self.master_id}", headers=PATCH,
                content=orjson.dumps([{"op": "replace", "path": "/status", "value": "entered-in-error"}]))],
            "batch of reads": lambda: [doctor("POST", "", json={"resourceType": "Bundle", "type": "batch", "entry": [
                {"request": {"method": "GET", "url": f"Observation?patient={patient}"}},
                {"request": {"method": "GET", "url": observation()[1:]}}]})],
            "refused: no authorisation": lambda: [http(w.get("stranger", f"/Observation?patient={patient}")),
                                                   http(w.get("stranger", observation()))],
            "emergency access (BTG)": lambda: [http(w.get("emergency", f"/Observation?patient={patient}"))],
            "the patient reads their record": lambda: [http(w.get("patient", f"/Observation?patient={patient}")),
                                                       http(w.get("patient", "/Observation")),
                                                       http(w.get("patient", f"/Patient/{patient}"))],
            "platform read and search": lambda: [http(w.get("platform", observation())),
                                                 http(w.get("platform", f"/Observation?subject=Patient/{patient}"))],
            "HL7 v2 over HTTP (hospital system)": lambda: [http(w.http.post(
                f"{server.root_url}/ingest/hl7v2", content=personalised("oru_r01.hl7", self.tag),
                headers={"Content-Type": "x-application/hl7-v2+er7", **hospital_headers(server)}))],
            "HL7 v2 over MLLP": lambda: [mllp(ack) for ack in send(server, personalised("mdm_t02.hl7", uuid.uuid4().hex[:8]))],
            "HL7 v2 ADT over MLLP (admit, update, merge)": lambda: [mllp(ack) for ack in send(server, *(
                personalised(name, tag) for tag in [uuid.uuid4().hex[:8]]
                for name in ("adt_a01.hl7", "adt_a08.hl7", "adt_a40.hl7")))],
            "CDA over /ingest/cda": lambda: [http(w.http.post(
                f"{server.root_url}/ingest/cda", content=personalised_cda("cda_imaging_report.xml", uuid.uuid4().hex[:8]),
                headers={"Content-Type": "application/hl7-cda+xml", **server.headers}))],
            "Subscription to one patient's Observations": lambda: [doctor("POST", "/Subscription", json={
                "resourceType": "Subscription", "status": "requested", "reason": "sharding",
                "criteria": f"Observation?patient=Patient/{patient}",
                "channel": {"type": "rest-hook", "endpoint": f"http://127.0.0.1:{free_port()}/hook"}})],
            "Subscription naming no patient": lambda: [doctor("POST", "/Subscription", json={
                "resourceType": "Subscription", "status": "requested", "reason": "sharding",
                "criteria": f"Observation?code={LOINC}|8867-4",
                "channel": {"type": "rest-hook", "endpoint": f"http://127.0.0.1:{free_port()}/hook"}})],
            "AuditEvent search by patient": lambda: [doctor("GET", f"/AuditEvent?patient={patient}"),
                                                     http(w.get("patient", f"/AuditEvent?patient={patient}"))],
            "the patient reads their trail": lambda: [http(w.get("patient", "/AuditEvent"))],
            "advance directives of the record": lambda: [doctor("GET", f"/Patient/{patient}/$advance-directives")],
            "reimbursements: create and $import (insurer)": lambda: [
                http(w.request("insurer", "POST", "/ExplanationOfBenefit", json=eob(f"Patient/{patient}", self.tag))),
                self._imported(w.request("insurer", "POST", "/$import", headers={"Content-Type": "application/fhir+ndjson"},
                                         content=b"\n".join(orjson.dumps(eob(f"Patient/{patient}", uuid.uuid4().hex))
                                                            for _ in range(3)) + b"\n"))],
            "delete": lambda: [doctor("DELETE", observation())],
            "history after delete": lambda: [doctor("GET", f"{observation()}/_history")],
            "record closed and reopened (platform)": lambda: [self._status("closed"), self._status("active")],
            "authorisation revoked (Consent deleted, platform)": lambda: [
                http(w.request("platform", "DELETE", f"/Consent/{self.consent_id}")),
                doctor("GET", f"/Observation?patient={patient}")],
        }

    def _consent(self) -> dict[str, Any]:
        return {"resourceType": "Consent", "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                      "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
                "patient": {"reference": f"Patient/{self.patient_id}"}, "dateTime": now(),
                "provision": {"type": "permit", "actor": [{
                    "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                         "code": "PRCP"}]},
                    "reference": {"reference": f"Practitioner/{self.doctor.practitioner_id}"}}]}}

    def _consented(self) -> Outcome:
        response = self.world.request("platform", "POST", "/Consent", json=self._consent())
        self.consent_id = response.json().get("id", "")
        return http(response)

    def _published(self) -> dict[str, Any]:
        attachment = {"contentType": "application/pdf", "language": "fr-FR", "data": base64.b64encode(PDF).decode(),
                      "title": "CR", "creation": "2026-07-02T08:30:00+02:00"}
        return document_reference({"reference": f"Patient/{self.patient_id}"}, self.master_id, attachment,
                                  profile="PDSm-SimplifiedPublish")

    @staticmethod
    def _imported(response: httpx.Response) -> Outcome:
        """200 with the count of lines stored: each line is a write whose commands are judged."""
        stored = response.status_code == 200 and "3 stored" in response.json()["issue"][0]["diagnostics"]
        return (response.status_code if stored else "not all stored"), response.text[:300]

    def _identified(self) -> dict[str, Any]:
        return {**self.observation(60), "identifier": [{"system": "urn:oid:1.2.250.1.999", "value": self.tag}]}

    def _created(self, response: httpx.Response) -> Outcome:
        if response.status_code == 201:
            self.observation_id = response.json()["id"]
        return http(response)

    def _provided(self, response: httpx.Response) -> Outcome:
        if response.status_code == 200:
            created = dict(e["response"]["location"].split("/")[:2] for e in response.json()["entry"])
            self.document_id, self.binary_id = created["DocumentReference"], created["Binary"]
        return http(response)

    def _replaced(self) -> Outcome:
        replaces = [{"code": "replaces", "target": {"reference": f"DocumentReference/{self.document_id}"}}]
        bundle = provide_bundle({"reference": f"Patient/{self.patient_id}"}, f"1.2.250.1.999.1.1.7.{self.tag}9",
                                relates_to=replaces)
        return self._provided(self.world.request("doctor", "POST", "", json=bundle))

    def _status(self, status: str) -> Outcome:
        current = self.world.get("platform", f"/Patient/{self.patient_id}").json()
        current["extension"] = [{"url": RECORD_STATUS, "valueCode": status}]
        return http(self.world.request("platform", "PUT", f"/Patient/{self.patient_id}", json=current))

    def _transaction(self) -> dict[str, Any]:
        condition = {"resourceType": "Condition", "subject": {"reference": f"Patient/{self.patient_id}"},
                     "code": {"text": "hypertension"}}
        return {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": self.observation(90),
             "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": condition,
             "request": {"method": "POST", "url": "Condition"}},
            {"request": {"method": "GET", "url": f"Observation/{self.observation_id}"}},
        ]}


EXPECTED: dict[str, list[int | str]] = {
    "authorisation (Consent write, platform)": [201], "create": [201], "conditional create": [201, 200],
    "read": [200], "vread": [200], "update": [200], "patch": [200], "history (instance)": [200],
    "search by patient": [200], "search by subject": [200], "search by patient (POST _search)": [200],
    "compartment search": [200], "_include": [200], "_revinclude": [200], "read the Patient": [200],
    "transaction for one patient": [200], "ITI-65 document submission": [200], "ITI-65 replacing a document": [200],
    "ITI-67 document search": [200], "ITI-67 document search by INS": [200], "ITI-105 simplified publish": [201],
    "PDSm metadata update (conditional patch by identifier)": [200], "batch of reads": [200],
    "update with If-Match": [200], "conditional update by identifier": [200], "ITI-68 document retrieval": [200, 200],
    "refused: no authorisation": [403, 403], "emergency access (BTG)": [200],
    "the patient reads their record": [200, 200, 200], "platform read and search": [200, 200],
    "HL7 v2 over HTTP (hospital system)": [200], "HL7 v2 over MLLP": ["AA"],
    "HL7 v2 ADT over MLLP (admit, update, merge)": ["AA", "AA", "AA"], "CDA over /ingest/cda": [201],
    "Subscription to one patient's Observations": [201], "Subscription naming no patient": [201], "AuditEvent search by patient": [200, 200],
    "the patient reads their trail": [200],
    "advance directives of the record": [200], "reimbursements: create and $import (insurer)": [201, 200],
    "delete": [204], "history after delete": [200], "record closed and reopened (platform)": [200, 200],
    # Without the authorisation the practitioner still reads what they deposited (docs/ACCESS-RULES.md, own mode).
    "authorisation revoked (Consent deleted, platform)": [204, 200],
}


class CommandLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        # What background workers sent (no request), in order.
        self.background: list[dict[str, Any]] = []

    def since_last(self) -> list[dict[str, Any]]:
        """The commands requests sent since the last call; background workers' are kept apart."""
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        whole = data[: data.rfind(b"\n") + 1]
        self.offset += len(whole)
        lines = [orjson.loads(line) for line in whole.splitlines()]
        self.background += [line for line in lines if line["request"] is None]
        return [line for line in lines if line["request"] is not None]


@dataclass
class Recording:
    scenarios: dict[str, Recorded]
    # The after-commit hooks' commands (fhir_server/events/notifications.py), run by the dispatcher.
    hooks: list[dict[str, Any]]


def _from_hook(line: dict[str, Any]) -> bool:
    return any(frame.endswith(" committed") for frame in line.get("where") or [])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    root = tmp_path_factory.mktemp("sharding")
    log = root / "commands.jsonl"
    server = dedicated_server(root / "data", {"FHIR_COMMAND_LOG": str(log)}).start()
    try:
        assert cli(["facilities", "add", "--server", server.root_url, "--token", server.token, *FACILITY]) == 0
        scenarios = Scenarios(open_world(server))
        commands = CommandLog(log)
        commands.since_last()
        results: dict[str, Recorded] = {}
        for name, step in scenarios.steps().items():
            outcomes = step()
            results[name] = Recorded(outcomes, commands.since_last())
        printed = subprocess.run([sys.executable, "-m", "fhir_server.cli", "shard-plan", "--data-dir",
                                  str(server.data_dir)], capture_output=True, check=True).stdout
        # What is judged is the plan the operator is shown.
        assert sharded_collections("fhir", "fhir_audit", orjson.loads(printed)) == KEYS
        report(results)
        # The dispatcher tells the hooks after each commit; the last deposit's Patient read ends them.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                _from_hook(line) and line["collection"] == "Patient" for line in commands.background):
            time.sleep(0.1)
            commands.since_last()
        yield Recording(results, [line for line in commands.background if _from_hook(line)])
    finally:
        server.stop()


# (database, collection) -> its shard key's fields; `fhir-server shard-plan` prints the clinical part.
KEYS = sharded_collections("fhir", "fhir_audit", shard_plan(structure.resource_types()))
# Where the command's query was made: the first frame outside the repository and the search
# planner, which build queries for their callers. Queries of these modules' own are the rules',
# the audit's, the adapters' (they know the patient); the others (interactions and the edge calling
# the repository by id, the purge) are the repository's routing.
BUILDERS = ("fhir_server/storage/", "fhir_server/search/")
OWN_QUERIES = ("fhir_server/access/", "fhir_server/audit/", "fhir_server/subscriptions/", "fhir_server/events/",
               "fhir_server/mhd/", "fhir_server/ingest/")
ROUTED_BY_REPOSITORY = ("fhir_server/access/opposition.py",)


# The repository methods that take a caller's filter as it is (others, by id, route it themselves).
GIVEN_FILTER = ("find", "_find")


def owner(where: list[str]) -> str:
    at = next((i for i, frame in enumerate(where) if not frame.startswith(BUILDERS)), len(where))
    origin = where[at] if at < len(where) else ""
    given = at == 0 or where[at - 1].rsplit(" ", 1)[-1] in GIVEN_FILTER
    own = origin.startswith(OWN_QUERIES) and not origin.startswith(ROUTED_BY_REPOSITORY) and given
    return "own query" if own else "routing"


def report(results: dict[str, Recorded]) -> None:
    """The unpinned commands, as a list to work from, when SHARDING_REPORT names a file."""
    target = os.environ.get("SHARDING_REPORT")
    if not target:
        return
    lines = ["# Commands that would reach every shard (tests/sharding/test_pinned_commands.py)", ""]
    for name, result in results.items():
        for line, why in unpinned(result.lines, KEYS):
            where = line.get("where") or []
            shown = {k: line[k] for k in ("filter", "query", "pipeline", "updates", "deletes") if k in line}
            lines += [f"- **{name}** [{owner(where)}] `{line['request']}`: `{line['command']}` on `{line['collection']}` "
                      f"({why}): `{orjson.dumps(shown).decode()[:400]}`",
                      *(f"    - {frame}" for frame in where)]
    Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_command_of_a_patient_scoped_request_pins_the_shard_key(recorded: Recording, name: str) -> None:
    result = recorded.scenarios[name]
    assert [code for code, _ in result.outcomes] == EXPECTED[name], result.outcomes
    judged = [line for line in result.lines if (line["db"], line.get("collection") or "") in KEYS]
    # Every scenario reads or writes patient data (and its audit): an empty log would prove nothing.
    assert judged, f"no command on a sharded collection recorded for {name}"
    found = [(line["request"], line["command"], line["collection"], why, line.get("where", [])[:2])
             for line, why in unpinned(result.lines, KEYS)]
    assert found == []


def test_audit_writes_carry_the_patient(recorded: Recording) -> None:
    written = [document for result in recorded.scenarios.values() for line in result.lines
               if line["collection"] == "audit_events" and line["command"] == "insert"
               for document in line["documents"]]
    assert written and all("pat" in document for document in written)
    patient_events = [d for d in written if d["pat"]]
    assert len(patient_events) >= len(EXPECTED) - 1


def test_the_after_commit_hooks_read_the_event_s_record_on_its_shard(recorded: Recording) -> None:
    """The e-mail notifications' reads of a deposited document and its patient name the record the
    outbox event carries (background work otherwise reads across shards by design)."""
    judged = [(line["collection"], line["command"]) for line in recorded.hooks
              if (line["db"], line["collection"] or "") in KEYS]
    assert ("DocumentReference", "find") in judged and ("Patient", "find") in judged, judged
    found = [(line["collection"], line.get("filter"), why) for line, why in unpinned(recorded.hooks, KEYS)]
    assert found == []


# What reads a record's Patient document for the record-write check (fhir_server.access.records);
# refreshing the rules summary after a Patient or Consent is written reads it too, apart. A
# transaction that looked up the Patient's current version (Repository.current) checks the record
# from that read (fhir_server.storage.known).
RECORD_CHECKS = (("fhir_server/access/records.py", ("load_status", "load", "_patient_document")),
                 ("fhir_server/storage/repository.py", ("current",)))


@pytest.mark.parametrize("name", ["CDA over /ingest/cda", "HL7 v2 over MLLP", "ITI-65 document submission",
                                  "transaction for one patient"])
def test_a_deposit_checks_its_record_once(recorded: Recording, name: str) -> None:
    """The record-write check reads the record's Patient once per transaction, not once per resource
    written (issue 18: a CDA letter read it six times; fhir_server.storage.known), and again only
    after the transaction wrote the Patient or a Consent (the record's status may have changed)."""
    checks: dict[str, int] = {}
    record_writes: dict[str, int] = {}
    for line in recorded.scenarios[name].lines:
        request = line["request"]
        if line["command"] == "find" and line["collection"] == "Patient" and any(
                frame.startswith(module) and frame.rsplit(" ", 1)[-1] in functions
                for frame in (line.get("where") or [])[:3] for module, functions in RECORD_CHECKS):
            checks[request] = checks.get(request, 0) + 1
        if line["command"] in ("insert", "update") and line["collection"] in ("Patient", "Consent"):
            record_writes[request] = record_writes.get(request, 0) + 1
    assert checks, "no record check recorded"
    for request, count in checks.items():
        assert count <= 1 + record_writes.get(request, 0), (request, count, record_writes)

