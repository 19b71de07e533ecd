"""The repository's routing (issue 25) for a caller no record rule narrows, the platform: its
queries carry no `pat` from the access rules, so only the routing pins them. By-id interactions
go through the `ids` table; searches naming patients in their type's first compartment parameter,
compartment searches of types with one compartment element, identifier searches and `_include`
name the patients. What stays across shards (docs/SCALING.md) is listed in ACROSS (tests/api/test_routing.py
checks that such searches still find what they name).

With ROUND_TRIPS_REPORT=<file>, the store commands each request sent are counted there (all of
them, and those on sharded collections), to compare the routing's cost with the code before it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.access.world import INS_NIA, World, open_world
from tests.server_process import dedicated_server
from tests.sharding.test_pinned_commands import KEYS, PATCH, CommandLog, Outcome, Recorded, http
from tests.sharding.pinning import unpinned

IDENTIFIER = "urn:oid:1.2.250.1.999.25"


class Platform:
    def __init__(self, world: World) -> None:
        self.world = world
        self.patient, self.ins = world.patient()
        self.other, _ = world.patient()
        self.observation = ""
        self.encounter = ""
        self.bundled = ""
        self.tag = os.urandom(4).hex()

    def request(self, method: str, path: str, **kwargs: Any) -> Outcome:
        return http(self.world.request("platform", method, path, **kwargs))

    def _observation(self, patient: str, value: int) -> dict[str, Any]:
        resource = {"resourceType": "Observation", "status": "final", "code": {"text": self.tag},
                    "identifier": [{"system": IDENTIFIER, "value": self.tag}],
                    "subject": {"reference": f"Patient/{patient}"},
                    "performer": [{"reference": f"Patient/{self.other}"}], "valueInteger": value}
        return {**resource, "id": self.observation} if self.observation else resource

    def _create(self) -> Outcome:
        response = self.world.request("platform", "POST", "/Observation", json=self._observation(self.patient, 1))
        self.observation = response.json().get("id", "")
        encounter = self.world.request("platform", "POST", "/Encounter", json={
            "resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{self.patient}"}})
        self.encounter = encounter.json().get("id", "")
        return http(response)

    def _bundle(self) -> Outcome:
        """A transaction writing an Observation and then a Patient: a record's write makes the
        transaction forget what it knew of its earlier writes, but not where they are routed."""
        # Without the identifier: the conditional update below must match one Observation only.
        observation = {k: v for k, v in self._observation(self.patient, 7).items() if k not in ("id", "identifier")}
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": observation, "request": {"method": "POST", "url": "Observation"}},
            {"resource": {"resourceType": "Patient", "name": [{"family": self.tag}]},
             "request": {"method": "POST", "url": "Patient"}}]}
        response = self.world.request("platform", "POST", "", json=bundle)
        if response.status_code == 200:
            self.bundled = response.json()["entry"][0]["response"]["location"].split("/")[1]
        return http(response)

    def steps(self) -> dict[str, Callable[[], list[Outcome]]]:
        p, o = self.patient, lambda: f"/Observation/{self.observation}"  # noqa: E731 - known once created
        return {
            "create": lambda: [self._create()],
            "read": lambda: [self.request("GET", o())],
            "transaction: an Observation, then a Patient": lambda: [self._bundle()],
            "read of what the transaction wrote": lambda: [self.request("GET", f"/Observation/{self.bundled}")],
            "read (non-patient type)": lambda: [self.request("GET", "/Organization/none-such")],
            "vread": lambda: [self.request("GET", f"{o()}/_history/1")],
            "update": lambda: [self.request("PUT", o(), json=self._observation(p, 2))],
            "patch": lambda: [self.request("PATCH", o(), headers=PATCH, content=orjson.dumps(
                [{"op": "replace", "path": "/valueInteger", "value": 3}]))],
            "history (instance)": lambda: [self.request("GET", f"{o()}/_history")],
            "move to another patient": lambda: [self.request("PUT", o(), json=self._observation(self.other, 4))],
            "move back": lambda: [self.request("PUT", o(), json=self._observation(p, 5))],
            "search by subject": lambda: [self.request("GET", f"/Observation?subject=Patient/{p}")],
            "search by patient, two named": lambda: [self.request("GET", f"/Observation?patient={p},{self.other}")],
            "search by identifier": lambda: [self.request("GET", f"/Observation?identifier={IDENTIFIER}|{self.tag}")],
            "search by patient's identifier (chain)": lambda: [self.request(
                "GET", f"/Observation?patient.identifier={INS_NIA}|{self.ins}")],
            "_include": lambda: [self.request("GET", f"/Observation?patient={p}&_include=Observation:subject")],
            "Patient by _id": lambda: [self.request("GET", f"/Patient?_id={p}")],
            "compartment, one element": lambda: [self.request("GET", f"/Patient/{p}/Encounter")],
            "conditional update by identifier": lambda: [self.request(
                "PUT", f"/Observation?identifier={IDENTIFIER}|{self.tag}",
                json={k: v for k, v in self._observation(p, 6).items() if k != "id"})],
            "delete": lambda: [self.request("DELETE", o())],
            "read after delete": lambda: [self.request("GET", o())],
            # Across shards by design (docs/SCALING.md): the answer must stay right.
            "search by performer": lambda: [self.request("GET", f"/Observation?performer=Patient/{self.other}")],
            "compartment, several elements": lambda: [self.request("GET", f"/Patient/{self.other}/Observation")],
            "_revinclude": lambda: [self.request("GET", f"/Patient?_id={p}&_revinclude=Encounter:subject")],
        }


EXPECTED: dict[str, list[int | str]] = {
    "create": [201], "read": [200], "transaction: an Observation, then a Patient": [200],
    "read of what the transaction wrote": [200], "read (non-patient type)": [404], "vread": [200], "update": [200],
    "patch": [200], "history (instance)": [200], "move to another patient": [200], "move back": [200],
    "search by subject": [200], "search by patient, two named": [200], "search by identifier": [200],
    "search by patient's identifier (chain)": [200],
    "_include": [200], "Patient by _id": [200], "compartment, one element": [200],
    "conditional update by identifier": [200], "delete": [204], "read after delete": [410],
    "search by performer": [200], "compartment, several elements": [200], "_revinclude": [200],
}
ACROSS = ("search by performer", "compartment, several elements", "_revinclude")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Recorded]]:
    root = tmp_path_factory.mktemp("routing")
    log = root / "commands.jsonl"
    server = dedicated_server(root / "data", {"FHIR_COMMAND_LOG": str(log)}).start()
    try:
        platform = Platform(open_world(server))
        commands = CommandLog(log)
        commands.since_last()
        results: dict[str, Recorded] = {}
        for name, step in platform.steps().items():
            results[name] = Recorded(step(), commands.since_last())
        _round_trips(results)
        yield results
    finally:
        server.stop()


def _round_trips(results: dict[str, Recorded]) -> None:
    target = os.environ.get("ROUND_TRIPS_REPORT")
    if not target:
        return
    rows = {name: {"commands": len(result.lines),
                   "sharded": sum((line["db"], line.get("collection") or "") in KEYS for line in result.lines),
                   "unpinned": len(unpinned(result.lines, KEYS))}
            for name, result in results.items()}
    Path(target).write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_platform_gets_the_same_answers(recorded: dict[str, Recorded], name: str) -> None:
    assert [code for code, _ in recorded[name].outcomes] == EXPECTED[name], recorded[name].outcomes


@pytest.mark.parametrize("name", [n for n in EXPECTED if n not in ACROSS])
def test_each_command_of_an_unrestricted_caller_pins_the_shard_key(recorded: dict[str, Recorded], name: str) -> None:
    result = recorded[name]
    found = [(line["command"], line["collection"], why, line.get("where", [])[:3])
             for line, why in unpinned(result.lines, KEYS)]
    assert found == []



def test_a_read_right_after_a_transaction_asks_no_route(recorded: dict[str, Recorded]) -> None:
    """The transaction wrote the Observation's `ids` entry, so the process knows its route (issue
    18: one store round trip per read), even though a Patient written after it in the same
    transaction made the transaction forget its earlier writes."""
    commands = [(line["command"], line["collection"]) for line in recorded["read of what the transaction wrote"].lines]
    # Besides the read's AuditEvent, written by the audit trail's group commit.
    assert [c for c in commands if c not in (("insert", "audit_events"), ("commitTransaction", None))] \
        == [("find", "Observation")], commands
