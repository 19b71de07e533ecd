"""SMART App Launch v2 scopes and the one decision they make: may this caller do this interaction.

Grammar (SMART App Launch 2.x, "Scopes and Launch Context"): `context/type.permissions[?query]`,
context `patient`, `user` or `system`; type a resource type or `*`; permissions a subset of
`cruds` in that order, or the v1 names `read` (= rs), `write` (= cud) and `*` (= cruds). A query
narrows the scope to resources matching those search parameters (granular scopes, e.g.
`patient/DocumentReference.rs?category=...`). Other scopes (`openid`, `launch/patient`,
`offline_access`...) grant no data access and are kept as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from typing import TYPE_CHECKING

from fhir_server.errors import FhirError

if TYPE_CHECKING:
    from fhir_server.security.callers import Caller

CONTEXTS = ("patient", "user", "system")
# Which permission letter each FHIR interaction needs (SMART 2.x: history goes with read for an
# instance and with search for a type or the system).
LETTER = {
    "read": "r", "vread": "r", "history-instance": "r",
    "search-type": "s", "search-system": "s", "history-type": "s", "history-system": "s",
    "create": "c", "update": "u", "patch": "u", "delete": "d",
}
V1 = {"read": "rs", "write": "cud", "*": "cruds"}
# Interactions whose call sites check the resource once read; any other one asked with neither
# criteria nor resource (patch, delete, history) is not covered by a granular scope.
PROVISIONAL = frozenset({"read", "vread"})
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(?:\?(.*))?$")

# Whether a resource matches search criteria: given by the server, which knows the search parameters.
Matcher = Callable[[dict, list[tuple[str, str]]], bool]


@dataclass(frozen=True)
class Scope:
    context: str
    resource_type: str
    letters: frozenset[str]
    # Granular scopes: the search criteria every resource it grants must match.
    criteria: tuple[tuple[str, str], ...] = ()

    def covers(self, resource_type: str, letter: str) -> bool:
        return letter in self.letters and self.resource_type in ("*", resource_type)


def parse_scope(text: str) -> Scope | None:
    """The resource scope `text` is, or None for any other scope (openid, launch...)."""
    found = _SCOPE.match(text)
    if found is None:
        if text.split("/", 1)[0] in CONTEXTS:
            raise ValueError(f"scope {text!r} is not context/type.permissions (e.g. system/Patient.rs)")
        return None
    context, resource_type, permissions, query = found.groups()
    letters = V1.get(permissions, permissions)
    if not letters or any(c not in "cruds" for c in letters) or letters != "".join(c for c in "cruds" if c in letters):
        raise ValueError(f"scope {text!r}: permissions must be a subset of 'cruds' in that order, or read, write, *")
    criteria = tuple(parse_qsl(query, keep_blank_values=True)) if query else ()
    return Scope(context, resource_type, frozenset(letters), criteria)


@dataclass(frozen=True)
class Scopes:
    text: tuple[str, ...]
    resource: tuple[Scope, ...]

    @classmethod
    def parse(cls, value: str | Iterable[str]) -> Scopes:
        """Scopes from a space-separated string or a list; ValueError names a malformed one."""
        words = value.split() if isinstance(value, str) else [w for v in value for w in str(v).split()]
        parsed = [parse_scope(w) for w in words]
        return cls(tuple(words), tuple(s for s in parsed if s is not None))

    @property
    def patient_scoped(self) -> bool:
        return any(s.context == "patient" for s in self.resource)

    def __str__(self) -> str:
        return " ".join(self.text)


def _forbidden(interaction: str, resource_type: str, letter: str) -> FhirError:
    return FhirError(403, "forbidden", f"The token's scopes do not allow {interaction} on {resource_type} "
                     f"(a scope such as system/{resource_type}.{letter}, user/{resource_type}.{letter} or "
                     f"patient/{resource_type}.{letter} is needed)")


def _criteria_hold(required: tuple[tuple[str, str], ...], asked: list[tuple[str, str]]) -> bool:
    return all(item in asked for item in required)


def authorize(caller: Caller, interaction: str, resource_type: str, *,
              criteria: list[tuple[str, str]] | None = None, resource: dict | None = None,
              matcher: Matcher | None = None) -> None:
    """Raise 403 unless a scope of the caller grants `interaction` on `resource_type`.

    A granular scope grants a search whose `criteria` include its own, and a resource that
    matches its criteria. Called without criteria nor resource before a read, a granular scope
    grants provisionally: the call site checks the resource once read.
    """
    letter = LETTER[interaction]
    candidates = [s for s in caller.scopes.resource if s.covers(resource_type, letter)]
    if not candidates:
        raise _forbidden(interaction, resource_type, letter)
    if any(not s.criteria for s in candidates):
        return
    if criteria is not None:
        if any(_criteria_hold(s.criteria, criteria) for s in candidates):
            return
    elif resource is not None:
        if matcher is not None and any(matcher(resource, list(s.criteria)) for s in candidates):
            return
    elif interaction in PROVISIONAL:
        return
    narrowed = " or ".join("&".join(f"{k}={v}" for k, v in s.criteria) for s in candidates)
    raise FhirError(403, "forbidden", f"The token grants {interaction} on {resource_type} only where {narrowed}")
