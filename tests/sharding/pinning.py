"""Whether a recorded store command (fhir_server.storage.command_log) would reach one shard, or a
few, of a cluster sharded by the plan (fhir_server.storage.sharding, policies/sharding.json).

A mongos sends a command to the shards its shard key's values can be on. With a hashed key (or a
compound key read by its first field) that means: the filter names the key's first field with an
equality, or an `$in` of a few values, at its top level or in one clause of a top-level `$and`;
an insert names every field of the key in each document. Anything else (a range, a `$or`, a
filter on other fields) goes to every shard. Commands that follow another (getMore,
commitTransaction) go where their first one went and are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.storage.sharding import audit_plan

# The most values of an `$in` counted as "a few shards" (issue 25: a short `$in`).
MOST_IN = 20
# Commands that carry a filter, and where it is.
FILTERED = {"find": "filter", "count": "query", "distinct": "query", "findAndModify": "query"}


@dataclass(frozen=True)
class Verdict:
    pinned: bool
    why: str


def sharded_collections(database: str, audit_database: str, plan: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(database, collection) -> the fields of its shard key, in order, for every sharded collection:
    the clinical database's from `plan` (what `fhir-server shard-plan` prints), the audit's beside it."""
    keys = {(database, entry["collection"]): list(entry["key"]) for entry in plan}
    keys.update({(audit_database, entry["collection"]): list(entry["key"]) for entry in audit_plan()})
    return keys


def _equality(condition: Any) -> Verdict:
    if not isinstance(condition, dict) or not any(str(k).startswith("$") for k in condition):
        return Verdict(True, "equality")
    if set(condition) == {"$eq"}:
        return Verdict(True, "$eq")
    if set(condition) == {"$in"} and isinstance(condition["$in"], list):
        count = len(condition["$in"])
        return Verdict(count <= MOST_IN, f"$in of {count} value(s)")
    return Verdict(False, f"operators {sorted(condition)}")


def filter_pins(query: Any, field: str) -> Verdict:
    """Whether `query` names `field` with an equality or a short `$in`, at its top level or in a
    clause of its top-level `$and`."""
    if not isinstance(query, dict):
        return Verdict(False, "no filter")
    if field in query:
        return _equality(query[field])
    refused: list[str] = []
    for clause in query.get("$and") or ():
        if isinstance(clause, dict) and field in clause:
            verdict = _equality(clause[field])
            if verdict.pinned:
                return Verdict(True, f"{verdict.why} in $and")
            refused.append(verdict.why)
    return Verdict(False, f"`{field}` " + (f"not pinned: {', '.join(refused)}" if refused else "not named"))


def command_pins(line: dict[str, Any], key: list[str]) -> Verdict | None:
    """The verdict on one recorded command of a collection sharded by `key`; None: not judged."""
    command, first = line["command"], key[0]
    if command in FILTERED:
        return filter_pins(line.get(FILTERED[command]), first)
    if command == "aggregate":
        pipeline = line.get("pipeline") or []
        if not pipeline or "$match" not in pipeline[0]:
            return Verdict(False, "aggregate without a leading $match")
        return filter_pins(pipeline[0]["$match"], first)
    if command in ("update", "delete"):
        statements = line.get("updates" if command == "update" else "deletes") or []
        for statement in statements:
            verdict = filter_pins(statement.get("q"), first)
            if not verdict.pinned:
                return verdict
        return Verdict(True, f"{len(statements)} statement(s) pinned")
    if command == "insert":
        for document in line.get("documents") or []:
            missing = [f for f in key if f not in document]
            if missing:
                return Verdict(False, f"insert without {missing}")
        return Verdict(True, "inserts carry the key")
    return None


def unpinned(lines: list[dict[str, Any]], keys: dict[tuple[str, str], list[str]]) -> list[tuple[dict[str, Any], str]]:
    """The commands of `lines` on sharded collections that would go to every shard, with why."""
    found = []
    for line in lines:
        key = keys.get((line["db"], line.get("collection") or ""))
        if key is None:
            continue
        verdict = command_pins(line, key)
        if verdict is not None and not verdict.pinned:
            found.append((line, verdict.why))
    return found
