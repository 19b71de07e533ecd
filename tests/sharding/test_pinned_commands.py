"""Proof without a cluster (issue 25): every command a patient-scoped request sends to a
collection sharded by the plan (policies/sharding.json) names its shard key, so a mongos would
send it to one shard (or a few: a short `$in`), never to all.

One server records every command (FHIR_COMMAND_LOG, fhir_server/storage/command_log.py) while
the requests below run, each with a real token: a practitioner the patient authorised (the record
opens through the access rules: Patient and Consent reads), the platform, the patient. Each
scenario's commands are those sent while its requests ran and labelled with a request (background
workers, which read across shards by design, record none); tests/sharding/pinning.py judges them.

With SHARDING_REPORT=<file>, the commands that would reach every shard are also written there,
with the request and the code that sent them (a working list for whoever routes them).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.definitions import structure
from tests.access.world import World, now, open_world
from tests.server_process import dedicated_server
from tests.sharding.pinning import sharded_collections, unpinned

PATCH = {"Content-Type": "application/json-patch+json"}
LOINC = "http://loinc.org"


@dataclass
class Recorded:
    """What one scenario's requests sent: the responses, and the store commands they sent."""

    responses: list[httpx.Response] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)


class Scenarios:
    """The patient-scoped requests, each kind once, in an order where each finds what it needs."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.patient_id, self.ins = world.patient()
        self.doctor = world.practitioner("doctor")
        self.world.practitioner("stranger")
        self.observation_id = ""
        self.document_id = ""

    def observation(self, value: int, observation_id: str | None = None) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{self.patient_id}"},
            "effectiveDateTime": now(), "valueQuantity": {"value": value, "unit": "/min"}}
        if observation_id:
            resource["id"] = observation_id
        return resource

    def steps(self) -> dict[str, Callable[[], list[httpx.Response]]]:
        w, patient = self.world, self.patient_id
        steps: dict[str, Callable[[], list[httpx.Response]]] = {
            "authorisation (Consent write, platform)": lambda: [
                w.request("platform", "POST", "/Consent", json=self._consent())],
            "create": lambda: [self._created(w.request("doctor", "POST", "/Observation", json=self.observation(72)))],
            "read": lambda: [w.get("doctor", f"/Observation/{self.observation_id}")],
            "vread": lambda: [w.get("doctor", f"/Observation/{self.observation_id}/_history/1")],
            "update": lambda: [w.request("doctor", "PUT", f"/Observation/{self.observation_id}",
                                         json=self.observation(75, self.observation_id))],
            "patch": lambda: [w.request("doctor", "PATCH", f"/Observation/{self.observation_id}", headers=PATCH,
                                        content=orjson.dumps([{"op": "replace", "path": "/valueQuantity/value",
                                                               "value": 80}]))],
            "history (instance)": lambda: [w.get("doctor", f"/Observation/{self.observation_id}/_history")],
            "search by patient": lambda: [w.get("doctor", f"/Observation?patient={patient}")],
            "search by subject": lambda: [w.get("doctor", f"/Observation?subject=Patient/{patient}")],
            "search by patient (POST _search)": lambda: [
                w.request("doctor", "POST", "/Observation/_search", content=f"patient={patient}".encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})],
            "compartment search": lambda: [w.get("doctor", f"/Patient/{patient}/Observation")],
            "_include": lambda: [w.get("doctor", f"/Observation?patient={patient}&_include=Observation:subject")],
            "_revinclude": lambda: [w.get("doctor", f"/Patient?_id={patient}&_revinclude=Observation:subject")],
            "read the Patient": lambda: [w.get("doctor", f"/Patient/{patient}")],
            "transaction for one patient": lambda: [w.request("doctor", "POST", "", json=self._transaction())],
            "ITI-65 document submission": lambda: [self._provided(w.provide("doctor", patient, author=self.doctor))],
            "ITI-67 document search": lambda: [w.get("doctor", f"/DocumentReference?patient={patient}")],
            "ITI-68 document retrieval": lambda: [w.get("doctor", f"/DocumentReference/{self.document_id}")],
            "refused: no authorisation": lambda: [w.get("stranger", f"/Observation?patient={patient}"),
                                                   w.get("stranger", f"/Observation/{self.observation_id}")],
            "platform read and search": lambda: [w.get("platform", f"/Observation/{self.observation_id}"),
                                                 w.get("platform", f"/Observation?subject=Patient/{patient}")],
            "delete": lambda: [w.request("doctor", "DELETE", f"/Observation/{self.observation_id}")],
            "history after delete": lambda: [w.get("doctor", f"/Observation/{self.observation_id}/_history")],
        }
        return steps

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

    def _created(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 201:
            self.observation_id = response.json()["id"]
        return response

    def _provided(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 200:
            self.document_id = next(e["response"]["location"].split("/")[1] for e in response.json()["entry"]
                                    if e["response"]["location"].startswith("DocumentReference/"))
        return response

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


EXPECTED = {
    "authorisation (Consent write, platform)": [201], "create": [201], "read": [200], "vread": [200],
    "update": [200], "patch": [200], "history (instance)": [200], "search by patient": [200],
    "search by subject": [200], "search by patient (POST _search)": [200], "compartment search": [200],
    "_include": [200], "_revinclude": [200], "read the Patient": [200], "transaction for one patient": [200],
    "ITI-65 document submission": [200], "ITI-67 document search": [200], "ITI-68 document retrieval": [200],
    "refused: no authorisation": [403, 403], "platform read and search": [200, 200], "delete": [200],
    "history after delete": [200],
}


class CommandLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def since_last(self) -> list[dict[str, Any]]:
        """The commands requests sent since the last call (background workers' left out)."""
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        whole = data[: data.rfind(b"\n") + 1]
        self.offset += len(whole)
        return [line for line in map(orjson.loads, whole.splitlines()) if line["request"] is not None]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Recorded]]:
    root = tmp_path_factory.mktemp("sharding")
    log = root / "commands.jsonl"
    server = dedicated_server(root / "data", {"FHIR_COMMAND_LOG": str(log)}).start()
    try:
        scenarios = Scenarios(open_world(server))
        commands = CommandLog(log)
        commands.since_last()
        results: dict[str, Recorded] = {}
        for name, step in scenarios.steps().items():
            responses = step()
            results[name] = Recorded(responses, commands.since_last())
        report(results)
        yield results
    finally:
        server.stop()


KEYS = sharded_collections("fhir", "fhir_audit", set(structure.resource_types()))
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
def test_each_command_of_a_patient_scoped_request_pins_the_shard_key(recorded: dict[str, Recorded], name: str) -> None:
    result = recorded[name]
    assert [r.status_code for r in result.responses] == EXPECTED[name], [r.text[:300] for r in result.responses]
    judged = [line for line in result.lines if (line["db"], line.get("collection") or "") in KEYS]
    # Every scenario reads or writes patient data (and its audit): an empty log would prove nothing.
    assert judged, f"no command on a sharded collection recorded for {name}"
    found = [(line["request"], line["command"], line["collection"], why, line.get("where", [])[:2])
             for line, why in unpinned(result.lines, KEYS)]
    assert found == []


def test_audit_writes_carry_the_patient(recorded: dict[str, Recorded]) -> None:
    written = [document for result in recorded.values() for line in result.lines
               if line["collection"] == "audit_events" and line["command"] == "insert"
               for document in line["documents"]]
    assert written and all("pat" in document for document in written)
    patient_events = [d for d in written if d["pat"]]
    assert len(patient_events) >= len(EXPECTED) - 1
