"""What one store transaction already knows, so it does not ask the store again (issue 18: a CDA
document took 43 round trips, several of them the same question asked once per entry).

What it knows is valid only inside the transaction that learnt it:
- `stored`: the versions this transaction wrote (`Repository._write`), by `(type, id)`. Inside its
  own transaction a write is what the store would answer for that resource, so the next entry that
  needs it (a Binary's security context, the document its submission set lists) reads it here.
- `records`: the Patient document (its `rules` summary) each record check read, by patient id: the
  record's status cannot change inside the transaction unless the transaction writes the Patient
  or a Consent, and then everything known is forgotten (`forget`), as it is when a write moves
  other resources (`_follow_context`, write rules that purge).
- `current`: what `Repository.current` found in the store (a version, or None: no such resource),
  the current documents the transaction's identity matches found (`Repository.ids`), and the ids
  it knows to be absent without asking (ids it has just made, those `Repository.look_ahead` found
  missing). A Patient's document read so is also its record's entry in `records`. Inside a transaction the store's answer changes only by
  the transaction's own writes, which `stored` holds and which are looked at first; a write that
  moves other resources forgets it with the rest.
- `staged`: whether the transaction deferred a resource's insert to its end (`storage/pending.py`),
  so a duplicate id found there is a write conflict, as it was when the insert came first.
- `routes`: the patient each resource this transaction wrote or moved is now routed to (the `ids`
  table's entry it wrote). Not forgotten with the rest: once the transaction commits they are what
  the table says, and the process remembers them for its reads (`Repository.in_transaction`).

A transaction run again (a retried attempt) starts knowing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_server.storage.documents import Stored

# Writes of these change what a record check reads (the Patient's rules summary, its status).
RECORD_TYPES = frozenset({"Patient", "Consent"})


@dataclass
class Known:
    stored: dict[tuple[str, str], Stored] = field(default_factory=dict)
    records: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    current: dict[tuple[str, str], Stored | None] = field(default_factory=dict)
    staged: bool = False
    routes: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def forget(self) -> None:
        self.stored.clear()
        self.records.clear()
        self.current.clear()


class KnownBySession:
    """One `Known` per open transaction, keyed by its session."""

    def __init__(self) -> None:
        self._by_session: dict[int, Known] = {}

    def start(self, session: Any) -> Known:
        known = self._by_session[id(session)] = Known()
        return known

    def discard(self, session: Any) -> None:
        self._by_session.pop(id(session), None)

    def of(self, session: Any) -> Known | None:
        """What the transaction of `session` knows; None outside a transaction."""
        return self._by_session.get(id(session)) if session is not None else None
