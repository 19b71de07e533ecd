"""Search at system level: `GET /fhir?_type=A,B&...` over the types listed, one after the other.

A page may span types; its cursor says which type the next page starts in (`part`) and where
in it (the type's own keyset cursor), so following `next` sees every match exactly once.
A type that lacks one of the parameters matches nothing, rather than everything.
"""

from __future__ import annotations

import copy

from fhir_server.errors import FhirError
from fhir_server.search.engine import SearchResult
from fhir_server.search.paging import Cursor, foreign_page
from fhir_server.search.request import SearchRequest
from fhir_server.security.callers import Caller
from fhir_server.storage.repository import Repository

ALWAYS_KNOWN = ("_id", "_lastUpdated", "_has")


def _knows_every_parameter(repo: Repository, resource_type: str, request: SearchRequest) -> bool:
    registry = repo.engine.registry
    return all(c.name in ALWAYS_KNOWN or registry.get(resource_type, c.name) is not None for c in request.criteria)


def _start(request: SearchRequest) -> tuple[int, Cursor | None]:
    """(index of the type to start in, that type's own cursor)."""
    cursor = request.cursor
    if cursor is None:
        return 0, None
    if not cursor.forward or len(cursor.values) != 2:
        raise foreign_page()
    part, inner = cursor.values
    # bool is an int to Python; a part is a plain index into _type.
    if type(part) is not int or not 0 <= part < len(request.types) or not (inner is None or isinstance(inner, list)):
        raise foreign_page()
    return part, (Cursor(True, inner) if inner is not None else None)


async def search_types(repo: Repository, caller: Caller, request: SearchRequest, *, base_url: str, strict: bool,
                       count: int) -> SearchResult:
    for rtype in request.types:
        repo.check_type(rtype)
    searchable = [t for t in request.types if _knows_every_parameter(repo, t, request)]
    if strict and not searchable:
        raise FhirError(400, "not-supported", "None of the _type types has every parameter of this search")
    start, inner = _start(request)
    combined = SearchResult([], [], 0, None, None, [], [], request.sort)
    for part in range(start, len(request.types)):
        rtype = request.types[part]
        if rtype not in searchable:
            continue
        one = copy.copy(request)
        one.cursor = inner if part == start else None
        wanted = max(count - len(combined.matches), 0)
        result = await repo.search(caller, rtype, one, base_url=base_url, strict=strict, count=wanted)
        combined.matches += result.matches
        combined.included += result.included
        combined.used, combined.ignored = result.used, result.ignored
        combined.total = None if result.total is None or combined.total is None else combined.total + result.total
        if result.next is not None:
            combined.next = Cursor(True, [part, result.next.values])
            combined.total = None
            break
        if len(combined.matches) >= count and count > 0:
            if part + 1 < len(request.types):
                combined.next = Cursor(True, [part + 1, None])
                combined.total = None
            break
    if start > 0 or inner is not None:
        combined.total = None
    return combined
