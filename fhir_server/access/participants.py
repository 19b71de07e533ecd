"""The participant rule (../shared/DECISIONS.md, "Access rules"): appointments and message threads
are seen by the professionals and establishments taking part in them, whatever the record
authorisation. Which elements name the participants of which type is data
(`policies/participants.json`); this module turns a resource into the participant key written with
each version (`par`, docs/ACCESS-RULES.md) and a caller into the values it is compared with.

A participant is named by the `identifier` of a Reference (IdNatPs for a professional, FINESS for an
establishment), so the key is known from the resource alone when it is written, and a professional's
query is one short `$in` on an unindexed array key, which both stores answer right
(docs/EMBEDDED-STORE.md: equality and `$in` on an unindexed array field).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import orjson

from fhir_server.config import PROJECT_ROOT
from fhir_server.security.callers import IDNATPS_SYSTEM, Caller

POLICY_FILE = PROJECT_ROOT / "policies" / "participants.json"
# FINESS of an establishment (ANS).
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"


@cache
def policy() -> dict[str, tuple[tuple[str, ...], ...]]:
    """Per type, the paths of the elements naming its participants."""
    types = orjson.loads(POLICY_FILE.read_bytes())["types"]
    return {name: tuple(tuple(path.split(".")) for path in paths) for name, paths in types.items()}


def types() -> frozenset[str]:
    return frozenset(policy())


def _references(value: Any, path: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The objects at the end of `path`, going through repeated elements at every step."""
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict):
            continue
        if not path:
            yield item
        else:
            yield from _references(item.get(path[0]), path[1:])


def reference_key(reference: Any) -> str | None:
    """`ps:{IdNatPs}` or `org:{FINESS}` for a Reference naming a professional or an establishment
    by identifier; None otherwise."""
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str) or not identifier["value"]:
        return None
    if identifier.get("system") == IDNATPS_SYSTEM:
        return f"ps:{identifier['value']}"
    if identifier.get("system") == FINESS_SYSTEM:
        return f"org:{identifier['value']}"
    return None


def keys_of(resource_type: str, resource: dict[str, Any]) -> list[str]:
    """The participants a resource of a participant type names, sorted (its `par` key)."""
    found = {key for path in policy().get(resource_type, ()) for reference in _references(resource, path)
             for key in [reference_key(reference)] if key}
    return sorted(found)


def caller_keys(caller: Caller) -> list[str]:
    """How a participant element names this caller: a professional by IdNatPs, or through the
    establishment their token names; an establishment's system by its FINESS."""
    found: list[str] = []
    if caller.kind == "practitioner" and caller.idnatps:
        found.append(f"ps:{caller.idnatps}")
    if caller.kind in ("practitioner", "system") and caller.organization:
        found.append(f"org:{caller.organization}")
    return found
