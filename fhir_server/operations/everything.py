"""`Patient/{id}/$everything` (FHIR R4 patient-operation-everything): the patient's record as one
paged searchset.

What it holds: the resources of the Patient compartment of that patient (the Patient itself
among them, R4 CompartmentDefinition `patient`), in the order of a compartment search across the
compartment's types, and on each page the shared resources its matches reference (Practitioner,
Organization... the `sharedTypes` of profiles/patient-scope.json) and the Binaries its documents'
attachments point at, as `include` entries: the specification's "any resource referenced". Everything is read through the repository's Reader of
the caller, so the record rules are conditions of every query (a masked document or an
INVISIBLE_PATIENT one before its date never matches), totals and pages stay true, and a caller
who may not open the record gets the record-level 403.

Parameters: `_since` (resources updated after that instant, `_lastUpdated=gt`), `_type` (the
types wanted; they must be compartment or shared types), `_count` and the signed `_page` tokens of
the search interaction. `start` and `end` (the care-date range) are not supported: they are ignored
and said so in an OperationOutcome entry (400 with `Prefer: handling=strict`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import orjson

from fhir_server.config import PROJECT_ROOT
from fhir_server.errors import FhirError
from fhir_server.interactions.output import outgoing
from fhir_server.interactions.search import SearchInteraction
from fhir_server.operations.system_search import search_types
from fhir_server.search.page_tokens import search_scope
from fhir_server.search.paging import Cursor
from fhir_server.search.request import Criterion, SearchRequest, parse_count
from fhir_server.search.searchset import Shown, searchset
from fhir_server.security.callers import Caller
from fhir_server.storage.documents import Stored
from fhir_server.storage.repository import check_id

OPERATION = "$everything"
# FHIR instant (R4 datatypes): seconds and a zone are required.
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
UNSUPPORTED = ("start", "end")
KNOWN = {"_since", "_type", "_count", "_page", "_format", "_pretty", *UNSUPPORTED}
# A reference to a resource of this server as written in a resource (`Type/id`).
RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


@cache
def shared_types() -> tuple[str, ...]:
    """Types that name no patient and that a patient's resources point at (profiles/patient-scope.json)."""
    data = orjson.loads((PROJECT_ROOT / "profiles" / "patient-scope.json").read_bytes())
    return tuple(data["sharedTypes"])


def included_types() -> tuple[str, ...]:
    """What a page brings beside its matches: the shared types, and the Binaries holding the
    documents' bytes (outside the R4 compartment, seen as their document is)."""
    return (*shared_types(), "Binary")


def wanted_types(params: list[tuple[str, str]], compartment: list[str],
                 allowed: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(compartment types, shared types) the operation returns: those `_type` lists (each must be
    a compartment or shared type the caller may search, else 400/403 from `allowed`'s raise), or
    every one the caller's scopes let it search."""
    listed = [t for name, value in params if name == "_type" for t in value.split(",") if t]
    if listed:
        outside = [t for t in listed if t not in compartment and t not in included_types()]
        if outside:
            raise FhirError(400, "invalid", f"{', '.join(outside)} is neither in the Patient compartment nor one of "
                                            f"{', '.join(included_types())}", ["_type"])
        for rtype in listed:
            allowed(rtype)
        chosen = list(dict.fromkeys(listed))
        return [t for t in compartment if t in chosen], [t for t in included_types() if t in chosen]
    inside = [t for t in compartment if _quietly(allowed, t)]
    if not inside:
        raise FhirError(403, "forbidden", "The token's scopes allow searching none of the Patient compartment's types")
    return inside, [t for t in included_types() if _quietly(allowed, t)]


def _quietly(allowed: Callable[[str], bool], rtype: str) -> bool:
    try:
        return allowed(rtype)
    except FhirError:
        return False


def _references(value: Any) -> Iterator[str]:
    """Every reference (`reference`) and attachment location (`url`) in a resource."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("reference", "url") and isinstance(item, str):
                yield item
            elif key != "contained":
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def referenced(matches: list[Stored], types: list[str], base_url: str) -> dict[str, set[str]]:
    """The ids of the resources of `types` the matches reference (relative or under `base_url`), by type."""
    base = base_url.rstrip("/") + "/"
    found: dict[str, set[str]] = {}
    for stored in matches:
        for reference in _references(stored.resource):
            match = RELATIVE.match(reference[len(base):] if reference.startswith(base) else reference)
            if match and match.group(1) in types:
                found.setdefault(match.group(1), set()).add(match.group(2))
    return found


def _request(params: list[tuple[str, str]], patient_id: str, types: list[str],
             strict: bool) -> tuple[SearchRequest, list[str]]:
    """The compartment search the operation is, and the parameters it ignores."""
    request = SearchRequest(types=types, compartment=patient_id)
    ignored: list[str] = []
    for name, value in params:
        if name == "_since":
            if not INSTANT.match(value):
                raise FhirError(400, "invalid", f"_since must be a FHIR instant (e.g. 2024-01-01T00:00:00Z), got "
                                                f"'{value}'", ["_since"])
            request.criteria.append(Criterion("_lastUpdated", "_lastUpdated", None, None, [f"gt{value}"]))
        elif name == "_count":
            request.count = parse_count(value)
        elif name == "_page":
            request.page = value
        elif name not in KNOWN or name in UNSUPPORTED:
            if strict:
                raise FhirError(400, "not-supported", f"$everything does not support the parameter '{name}'", [name])
            ignored.append(name)
    return request, ignored


def _link_params(params: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """What the links repeat: the operation's own parameters as the client sent them."""
    kept = [(n, v) for n, v in params if n in ("_since", "_type")]
    return [*kept, ("_count", str(count))]


async def everything(search: SearchInteraction, caller: Caller, patient_id: str, params: list[tuple[str, str]],
                     allowed: Callable[[str], bool], *, base_url: str, strict: bool) -> dict[str, Any]:
    """One page of the patient's record as `caller` may see it (the first page, or the one `_page` names)."""
    check_id(patient_id)
    repository = search.repository
    # The record first: a record the caller may not open is the 403, an unknown patient the 404.
    await repository.read(caller, "Patient", patient_id)
    compartment, shared = wanted_types(params, repository.engine.compartment.types(), allowed)
    request, ignored = _request(params, patient_id, compartment, strict)
    count = search.settings.page_size(request.count)
    path = f"Patient/{patient_id}/{OPERATION}"
    # The token is bound to the types as asked, so a page cannot be replayed with other ones.
    scope = search_scope(path, compartment + shared, request.criteria, [], count)
    if request.page is not None:
        request.cursor = search.tokens.open(request.page, scope)
    result = await search_types(repository, caller, request, base_url=base_url, strict=strict, count=count)
    result.ignored += ignored
    if shared and result.matches:
        # Through a reader of the caller opened on this record: the same rules as the matches.
        reader = await repository.reader(caller).open([patient_id])
        result.included += await repository.engine.fetch(referenced(result.matches, shared, base_url), reader)
    shown: list[Shown] = []
    for mode, found in (("match", result.matches), ("include", result.included)):
        for stored in found:
            resource = await outgoing(repository, caller, stored)
            if resource is not None:
                shown.append((stored, resource, mode))

    def page_token(cursor: Cursor) -> str:
        return search.tokens.issue(cursor, scope)

    return searchset(base_url, path, request, result, shown, count, page_token,
                     link_params=_link_params(params, count))
