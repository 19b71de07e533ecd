"""The shard plan: which collections are sharded on a MongoDB cluster, and by which key.

One place knows where data lives (docs/SCALING.md): the repository routes its queries by it, the
command-recording tests check them against it, `fhir-server shard-plan` prints it and
`fhir-server mongo-setup` applies it. The plan is data, `policies/sharding.json`; the resource
types sharded by patient are those of the R4 Patient CompartmentDefinition.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fhir_server.definitions.compartment import patient_compartment_params
from fhir_server.storage.database import collection_name

PLAN_FILE = Path(__file__).resolve().parents[2] / "policies" / "sharding.json"
# The routing table of patient types: `Type/id` -> the resource's `pat` (policies/sharding.json).
IDS = "ids"


@cache
def _plan() -> dict[str, Any]:
    return json.loads(PLAN_FILE.read_text(encoding="utf-8"))


def patient_key() -> dict[str, Any]:
    return dict(_plan()["patient_key"])


def by_patient(resource_type: str) -> bool:
    """Whether the type's collection is sharded by patient (else it stays unsharded)."""
    return resource_type in patient_compartment_params()


def shard_plan(resource_types: set[str] | list[str]) -> list[dict[str, Any]]:
    """The clinical database's sharded collections, `{"collection": NAME, "key": {...}}` each."""
    plan = [{"collection": collection_name(t), "key": patient_key()} for t in sorted(resource_types) if by_patient(t)]
    return plan + [{"collection": c["collection"], "key": dict(c["key"])} for c in _plan()["collections"]]


def audit_plan() -> list[dict[str, Any]]:
    """The audit database's sharded collections."""
    return [{"collection": c["collection"], "key": dict(c["key"])} for c in _plan()["audit_collections"]]
