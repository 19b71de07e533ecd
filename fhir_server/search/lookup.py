"""A side table that finds resources by identifier with one indexed equality.

Identifier values are arrays inside a resource, and the embedded store cannot index arrays
(docs/EMBEDDED-STORE.md), so `Patient?identifier=sys|val` was a scan of every Patient, and with
it every conditional create by INS, every IHE MHD duplicate check and every CDA or HL7 v2 replay.
Each identifier token key of a resource is therefore also written, in the same transaction, as
one document of the `lookup` collection whose `k` is a scalar indexed on every store. Queries
of identifier parameters without a modifier ask this table first; other modifiers use `ix`.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.search.fields import field_key
from fhir_server.storage.pending import Overlay, PendingWrites

LOOKUP = "lookup"
# Token parameters answered through the table: identifiers are what systems look records up by.
LOOKUP_CODES = ("identifier",)
INDEXES = (IndexModel([("k", ASCENDING)]),)
Session = AsyncClientSession | None


def lookup_key(resource_type: str, code: str, token_key: str) -> str:
    return f"{resource_type}|{code}|{token_key}"


def keys_of(resource_type: str, ix: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for code in LOOKUP_CODES:
        values = ix.get(field_key(code)) or []
        for value in values if isinstance(values, list) else [values]:
            out.append(lookup_key(resource_type, code, value))
    return sorted(set(out))


class LookupTable:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db[LOOKUP]

    async def ensure_index(self) -> None:
        await self.collection.create_indexes(list(INDEXES))

    def replace(self, pending: PendingWrites, session: AsyncClientSession, resource_id: str,
                before: list[str], after: list[str], patient: str | None, moved: bool) -> None:
        """Queue the key changes of one write; they reach the store with the transaction's commit.
        Each entry carries the resource's patient (`p`), so a resource that `moved` to another
        patient has all its entries written again."""
        removed = before if moved else [k for k in before if k not in after]
        added = after if moved else [k for k in after if k not in before]
        if removed:
            pending.delete(session, LOOKUP, [f"{k}#{resource_id}" for k in removed], "k", removed)
        if added:
            pending.insert(session, LOOKUP, [{"_id": f"{k}#{resource_id}", "k": k, "r": resource_id, "p": patient}
                                             for k in added])

    async def ids(self, resource_type: str, code: str, token_keys: list[str],
                  session: Session, pending: Overlay | None = None) -> list[tuple[str, str | None]]:
        """(resource id, its patient) of each resource holding one of the keys; `pending`: the
        entries the transaction of `session` has yet to send (fhir_server.storage.pending)."""
        found: set[tuple[str, str | None]] = set()
        # One equality per key: the embedded store does not use an index for `$in`.
        for key in token_keys:
            wanted = lookup_key(resource_type, code, key)
            docs = await self.collection.find({"k": wanted}, {"r": 1, "p": 1}, session=session).to_list(None)
            if pending is not None:
                docs = pending.merged(docs, lambda entry, wanted=wanted: entry["k"] == wanted)
            found.update((d["r"], d.get("p")) for d in docs)
        return sorted(found, key=lambda f: (f[0], f[1] or ""))
