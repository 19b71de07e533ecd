"""Reading the audit trail as a user would: `GET /AuditEvent` over HTTP, and what an event says."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tests.access.world import World

IDNATPS = "urn:oid:1.2.250.1.71.4.2.1"
BTG = ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "BTG")


def trail(world: World, caller: str = "platform", **params: str) -> list[dict[str, Any]]:
    """The AuditEvents `caller` may read (matches only), newest first."""
    response = world.get(caller, "/AuditEvent", params={"_count": "1000", **params})
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"]


def new_events(world: World, patient: str, act: Callable[[], Any]) -> tuple[Any, list[dict[str, Any]]]:
    """What `act` returned, and the events it added to `patient`'s trail (as the platform reads it)."""
    before = {e["id"] for e in trail(world, patient=patient)}
    result = act()
    return result, [e for e in trail(world, patient=patient) if e["id"] not in before]


def subtype(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def references(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in event.get("entity", []) if "reference" in e.get("what", {})}


def requestor(event: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in event["agent"] if a.get("requestor"))


def requestor_id(event: dict[str, Any]) -> str | None:
    return requestor(event).get("who", {}).get("identifier", {}).get("value")


def query(event: dict[str, Any]) -> str | None:
    for entity in event.get("entity", []):
        if entity.get("role", {}).get("code") == "24":
            return base64.b64decode(entity["query"]).decode()
    return None


def is_btg(event: dict[str, Any]) -> bool:
    return any((c["system"], c["code"]) == BTG for p in requestor(event).get("purposeOfUse", []) for c in p["coding"])
