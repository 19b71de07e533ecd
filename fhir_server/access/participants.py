"""The participant rule (../shared/DECISIONS.md, "Access rules"): appointments and message threads
are seen by the professionals and establishments taking part in them, whatever the record
authorisation. Which elements name the participants of which type is data
(`policies/participants.json`); this module turns a resource into the participant key written with
each version (`par`, docs/ACCESS-RULES.md) and a caller into the values it is compared with.

A participant is named by the `identifier` of a Reference (IdNatPs for a professional, FINESS for an
establishment), or by a reference to a resource carrying it: a Practitioner (its IdNatPs), an
Organization (its FINESS), a PractitionerRole (its practitioner's IdNatPs, else its organization's
FINESS), stored or contained. The stored ones are looked up when the resource is written, in the
write's transaction (`resolve`), so reads compare keys only, and a professional's query is one short
`$in` on an unindexed array key, which both stores answer right (docs/EMBEDDED-STORE.md: equality and
`$in` on an unindexed array field).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from fhir_server.config import PROJECT_ROOT
from fhir_server.security.callers import IDNATPS_SYSTEM, Caller

if TYPE_CHECKING:
    from fhir_server.storage.repository import Reader, Repository, Session

POLICY_FILE = PROJECT_ROOT / "policies" / "participants.json"
# FINESS of an establishment (ANS).
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
# The types a reference may name a participant through, in the order a transaction writes them
# (a PractitionerRole names a Practitioner and an Organization): `operations/transaction.py`.
NAMING_TYPES = ("Practitioner", "Organization", "PractitionerRole")


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


def _identified(entity: dict[str, Any], system: str, prefix: str) -> str | None:
    for identifier in entity.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == system \
                and isinstance(identifier.get("value"), str) and identifier["value"]:
            return f"{prefix}:{identifier['value']}"
    return None


def _literal(target: Any) -> str | None:
    """`Type/id` for a relative reference to a resource of a naming type (a version's too)."""
    if not isinstance(target, str):
        return None
    parts = target.split("/")
    if parts[0] in NAMING_TYPES and (len(parts) == 2 or (len(parts) == 4 and parts[2] == "_history")) and parts[1]:
        return f"{parts[0]}/{parts[1]}"
    return None


@dataclass(frozen=True)
class Names:
    """Who references name: the stored Practitioners, Organizations and PractitionerRoles they
    point to, looked up once (`resolve`) as `Type/id` -> `ps:{IdNatPs}` or `org:{FINESS}`."""

    stored: Mapping[str, str]

    def key(self, reference: Any, within: dict[str, Any]) -> str | None:
        """The participant a Reference of `within` names: its identifier, else the resource it points
        to (contained in `within`, or stored); None when that carries no IdNatPs or FINESS."""
        found = reference_key(reference)
        if found is not None or not isinstance(reference, dict):
            return found
        target = reference.get("reference")
        if isinstance(target, str) and target.startswith("#"):
            return self.entity_key(_contained(within, target[1:]), within)
        literal = _literal(target)
        return self.stored.get(literal) if literal else None

    def entity_key(self, entity: dict[str, Any] | None, within: dict[str, Any]) -> str | None:
        """Who a Practitioner, Organization or PractitionerRole is; `within` holds its `#` references."""
        if entity is None:
            return None
        if entity.get("resourceType") == "Practitioner":
            return _identified(entity, IDNATPS_SYSTEM, "ps")
        if entity.get("resourceType") == "Organization":
            return _identified(entity, FINESS_SYSTEM, "org")
        if entity.get("resourceType") == "PractitionerRole":
            # The professional acting in the role; the establishment only for a role naming nobody,
            # as a document's author is its professional, else its organisation (record_keys._author).
            return self.key(entity.get("practitioner"), within) or self.key(entity.get("organization"), within)
        return None


def _contained(within: dict[str, Any], local_id: str) -> dict[str, Any] | None:
    for entity in within.get("contained") or []:
        if isinstance(entity, dict) and entity.get("id") == local_id:
            return entity
    return None


def _role_targets(role: dict[str, Any]) -> set[str]:
    """The stored Practitioner and Organization a PractitionerRole points to."""
    found = set()
    for name in ("practitioner", "organization"):
        reference = role.get(name)
        literal = _literal(reference.get("reference")) if isinstance(reference, dict) else None
        if literal:
            found.add(literal)
    return found


async def stored_names(repository: Repository, session: Session, references: Iterable[str]) -> Names:
    """Who each `Type/id` (a Practitioner, Organization or PractitionerRole) names, read in `session`
    (a write's transaction sees what it wrote before): one lookup per type named, and one more
    for the Practitioners and Organizations of the PractitionerRoles found. A deleted resource,
    one not stored, or one without IdNatPs (FINESS) names nobody."""
    wanted = {literal for r in references for literal in [_literal(r)] if literal}
    found: dict[str, dict[str, Any]] = {}
    if wanted:
        # Read directly from the collections: the transaction's deferred writes go first.
        await repository.settle(session)
    for _ in range(2):
        for rtype in NAMING_TYPES:
            ids = sorted(r.split("/", 1)[1] for r in wanted if r.startswith(f"{rtype}/") and r not in found)
            if not ids:
                continue
            docs = await repository.collection(rtype).find({"_id": ids[0] if len(ids) == 1 else {"$in": ids},
                                                            "del": False}, {"res": 1}, session=session).to_list(None)
            found.update({f"{rtype}/{d['_id']}": d.get("res") or {} for d in docs})
        wanted = {t for r, entity in found.items() if r.startswith("PractitionerRole/")
                  for t in _role_targets(entity)} - set(found)
        if not wanted:
            break
    # Practitioners and Organizations first: the PractitionerRoles' keys are read through them.
    people = Names({r: k for r, e in found.items() if not r.startswith("PractitionerRole/")
                    for k in [Names({}).entity_key(e, e)] if k})
    roles = {r: k for r, e in found.items() if r.startswith("PractitionerRole/")
             for k in [people.entity_key(e, e)] if k}
    return Names({**people.stored, **roles})


def references(resource_type: str, resource: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    """The References naming the participants of a resource of a participant type."""
    for path in policy().get(resource_type, ()) if resource else ():
        yield from _references(resource, path)


async def resolve(reader: Reader, resource_type: str, resources: Iterable[dict[str, Any] | None]) -> Names:
    """Who the participant references of these resources name, looked up in the reader's session:
    the stored resources they point to, and those the PractitionerRoles they contain point to."""
    targets: set[str] = set()
    for resource in resources:
        for reference in references(resource_type, resource):
            literal = _literal(reference.get("reference"))
            if literal:
                targets.add(literal)
        for entity in (resource or {}).get("contained") or []:
            if isinstance(entity, dict) and entity.get("resourceType") == "PractitionerRole":
                targets |= _role_targets(entity)
    if not targets:
        return Names({})
    return await stored_names(reader.repository, reader.session, targets)


async def keys_of(reader: Reader, resource_type: str, resource: dict[str, Any]) -> list[str]:
    """The participants a resource of a participant type names, sorted (its `par` key)."""
    names = await resolve(reader, resource_type, [resource])
    return sorted({key for reference in references(resource_type, resource)
                   for key in [names.key(reference, resource)] if key})


def caller_keys(caller: Caller) -> list[str]:
    """How a participant element names this caller: a professional by IdNatPs, or through the
    establishment their token names; an establishment's system by its FINESS."""
    found: list[str] = []
    if caller.kind == "practitioner" and caller.idnatps:
        found.append(f"ps:{caller.idnatps}")
    if caller.kind in ("practitioner", "system") and caller.organization:
        found.append(f"org:{caller.organization}")
    return found
