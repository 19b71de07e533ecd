"""What makes a Communication part of secure messaging, and what a thread is: `policies/messaging.json`."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from fhir_server.config import PROJECT_ROOT

POLICY_FILE = PROJECT_ROOT / "policies" / "messaging.json"


@cache
def policy() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(POLICY_FILE.read_bytes())
    return data


def kind(resource: dict[str, Any] | None) -> str | None:
    """`thread` (a header), `message`, or None for a Communication outside secure messaging."""
    codes = {c.get("code") for concept in (resource or {}).get("category") or [] if isinstance(concept, dict)
             for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("system") == policy()["category"]}
    for name in ("thread", "message"):
        if policy()[f"{name}Code"] in codes:
            return name
    return None


def is_closed(header: dict[str, Any] | None) -> bool:
    return (header or {}).get("status") == policy()["closedStatus"]


def thread_of(message: dict[str, Any] | None) -> str | None:
    """The id of the header a message is `partOf`, if it names exactly one Communication."""
    parts = [p.get("reference") for p in (message or {}).get("partOf") or [] if isinstance(p, dict)]
    if len(parts) != 1 or not isinstance(parts[0], str) or not parts[0].startswith("Communication/"):
        return None
    rest = parts[0].split("/", 1)[1]
    return rest if rest and "/" not in rest else None
