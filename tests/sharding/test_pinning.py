"""The checker of tests/sharding/pinning.py on crafted commands: each verdict both ways, so the
command-recording tests can trust it."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.storage.sharding import shard_plan
from tests.sharding.pinning import MOST_IN, command_pins, sharded_collections, unpinned

PATIENT_KEY = ["pat", "_id"]


def line(command: str, collection: str = "Observation", db: str = "fhir", **fields: Any) -> dict[str, Any]:
    return {"db": db, "command": command, "collection": collection, "request": "GET /fhir/x", **fields}


@pytest.mark.parametrize("command", [
    line("find", filter={"pat": "p1", "del": False}),
    line("find", filter={"pat": {"$eq": "p1"}}),
    line("find", filter={"pat": {"$in": [f"p{i}" for i in range(MOST_IN)]}}),
    line("find", filter={"$and": [{"ix.code": "x"}, {"pat": "p1"}], "del": False}),
    line("find", filter={"pat": None}),
    line("count", query={"pat": "p1"}),
    line("distinct", query={"pat": "p1"}),
    line("findAndModify", query={"pat": "p1", "_id": "o1"}),
    line("aggregate", pipeline=[{"$match": {"pat": "p1"}}, {"$group": {"_id": None, "n": {"$sum": 1}}}]),
    line("update", updates=[{"q": {"pat": "p1", "_id": "o1"}, "u": {"$set": {"a": 1}}}]),
    line("delete", deletes=[{"q": {"$and": [{"pat": {"$in": ["p1", "p2"]}}]}, "limit": 0}]),
    line("insert", documents=[{"_id": "o1", "pat": "p1"}, {"_id": "o2", "pat": None}]),
])
def test_commands_that_reach_one_shard_or_a_few_are_pinned(command: dict[str, Any]) -> None:
    verdict = command_pins(command, PATIENT_KEY)
    assert verdict is not None and verdict.pinned, verdict


@pytest.mark.parametrize("command", [
    line("find", filter={"_id": "o1"}),
    line("find", filter={}),
    line("find", filter={"pat": {"$in": [f"p{i}" for i in range(MOST_IN + 1)]}}),
    line("find", filter={"pat": {"$gt": "p"}}),
    line("find", filter={"pat": {"$ne": "p1"}}),
    line("find", filter={"$or": [{"pat": "p1"}, {"pat": "p2"}]}),
    line("find", filter={"$and": [{"$or": [{"pat": "p1"}]}]}),
    line("find", filter={"$nor": [{"pat": "p1"}]}),
    line("count", query={"ix.subject": "Patient/p1"}),
    line("distinct", query={}),
    line("findAndModify", query={"_id": "o1"}),
    line("aggregate", pipeline=[{"$sort": {"ts": 1}}, {"$match": {"pat": "p1"}}]),
    line("aggregate", pipeline=[{"$match": {"rid": "Observation/o1"}}]),
    line("update", updates=[{"q": {"pat": "p1"}, "u": {}}, {"q": {"_id": "o2"}, "u": {}}]),
    line("delete", deletes=[{"q": {"_id": "o1"}, "limit": 1}]),
    line("insert", documents=[{"_id": "o1", "pat": "p1"}, {"_id": "o2"}]),
])
def test_commands_that_reach_every_shard_are_not_pinned(command: dict[str, Any]) -> None:
    verdict = command_pins(command, PATIENT_KEY)
    assert verdict is not None and not verdict.pinned, verdict


def test_the_key_of_the_collection_decides() -> None:
    assert command_pins(line("find", "ids", filter={"_id": "Observation/o1"}), ["_id"]).pinned
    assert not command_pins(line("find", "ids", filter={"pat": "p1"}), ["_id"]).pinned
    assert command_pins(line("find", "lookup", filter={"k": "x|1"}), ["k"]).pinned
    assert not command_pins(line("insert", "binaries.chunks", documents=[{"files_id": "f"}]), ["files_id", "n"]).pinned


@pytest.mark.parametrize("command", ["commitTransaction", "abortTransaction", "getMore", "killCursors", "createIndexes"])
def test_commands_that_follow_another_are_not_judged(command: str) -> None:
    assert command_pins(line(command), PATIENT_KEY) is None


def test_only_sharded_collections_of_the_plan_are_judged() -> None:
    keys = sharded_collections("fhir", "fhir_audit", shard_plan({"Observation", "Practitioner", "Group"}))
    assert keys[("fhir", "Observation")] == PATIENT_KEY
    assert keys[("fhir", "history")] == PATIENT_KEY
    assert keys[("fhir_audit", "audit_events")] == PATIENT_KEY
    assert ("fhir", "Practitioner") not in keys
    # Group has a Patient-compartment parameter (member) and is stored as Group_.
    assert keys[("fhir", "Group_")] == PATIENT_KEY
    lines = [line("find", "Practitioner", filter={}), line("find", "leases", filter={}),
             line("find", "audit_events", filter={}),  # the clinical database has no audit_events
             line("find", "audit_events", db="fhir_audit", filter={"who": "x"}),
             line("find", filter={"pat": "p1"})]
    assert [(found["collection"], found["db"]) for found, _ in unpinned(lines, keys)] == [("audit_events", "fhir_audit")]
