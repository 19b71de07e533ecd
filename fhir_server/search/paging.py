"""Keyset paging: a page starts after (or before) the sort values of a boundary entry.

Cursors carry those values, never a list of ids or an offset, so a deep page costs what the
first one does on an indexed store, and concurrent writes cannot make a client see a match twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.errors import FhirError

UNIQUE_FIELDS = ("sid",)  # sort fields whose values never repeat; present `sk.*` keys end with the id too
PRESENT_FIELDS = ("sid", "ts")  # every stored document has these


@dataclass(frozen=True)
class SortField:
    field: str
    descending: bool

    @property
    def unique(self) -> bool:
        return self.field in UNIQUE_FIELDS or self.field.startswith("sk.")


def foreign_page() -> FhirError:
    """The one answer to a `_page` value this search did not hand out, whatever is wrong with it."""
    return FhirError(400, "invalid", "The _page value is not a page of this search; follow the links of the "
                     "search's own Bundle", ["_page"])


@dataclass
class Cursor:
    """Where a page starts: after (forward) or before the sort values of a boundary entry.
    On the wire it is a signed token (fhir_server.search.page_tokens)."""

    forward: bool
    values: list[Any]


def with_tiebreak(fields: list[SortField]) -> list[SortField]:
    # An `sk.*` key is unique only where present: resources lacking the value tie, and a cursor
    # on them needs the id to know which of them it stopped at.
    if fields and fields[-1].field in UNIQUE_FIELDS:
        return fields
    return [*fields, SortField("sid", False)]


def reversed_fields(fields: list[SortField]) -> list[SortField]:
    return [SortField(f.field, not f.descending) for f in fields]


def mongo_sort(fields: list[SortField]) -> list[tuple[str, int]]:
    return [(f.field, -1 if f.descending else 1) for f in fields]


def value_of(doc: dict[str, Any], field: str) -> Any:
    current: Any = doc
    for part in field.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def boundary(doc: dict[str, Any], fields: list[SortField]) -> list[Any]:
    return [value_of(doc, f.field) for f in fields]


def _after(field: SortField, value: Any) -> list[dict[str, Any]]:
    """Conditions on one field selecting the values after `value`, in sort order."""
    # MongoDB sorts missing values first ascending and last descending. Sort fields are never
    # stored as null, so `$exists` says "has a value" (the embedded store matches missing fields
    # with `$ne: null`).
    if not field.descending:
        return [{field.field: {"$exists": True}}] if value is None else [{field.field: {"$gt": value}}]
    if value is None:
        return []
    if field.field in PRESENT_FIELDS:
        return [{field.field: {"$lt": value}}]
    return [{field.field: {"$lt": value}}, {field.field: {"$exists": False}}]


def after_conditions(fields: list[SortField], values: list[Any]) -> list[dict[str, Any]]:
    """The documents strictly after `values` in the order of `fields`, as disjoint conditions
    listed in that same order (empty when there are none).

    Stored sort values are strings (ids, instants, `sk`/`ix` keys) or absent; a boundary holding
    anything else, or a value per field, is refused here, where the values become a query, even
    though tokens are signed: nothing but a plain value may ever reach the store from a client.

    The page is read by querying them one after the other until it is full, rather than through
    one `$or`: the embedded store answers a top-level `$or` by scanning the whole collection,
    while each condition alone keeps the index of the search criteria (one patient's documents).
    """
    if len(values) != len(fields) or not all(v is None or isinstance(v, str) for v in values):
        raise foreign_page()
    conditions: list[dict[str, Any]] = []
    for i, field in enumerate(fields):
        equal = {fields[j].field: values[j] for j in range(i)}
        # Documents that tie with the boundary on more fields come first.
        conditions = [{**equal, **step} for step in _after(field, values[i])] + conditions
        if field.unique and values[i] is not None:
            break
    return conditions
