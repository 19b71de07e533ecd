"""Writes a transaction defers to its end: history entries, identifier lookup keys, outbox
events, conditional-create claims, and the inserts of new resources with their `ids` entries.

They are sent as one command per run of the same kind and collection, just before commit,
instead of one round trip per resource: a CDA document produced 28 round trips to the store, 9
of them history and lookup writes, then (issue 18) 33, 14 of them inserts and claims. Whatever
reads or changes the store inside the transaction first sends what is pending
(`Repository.settle`), so the transaction still reads its own writes; the reads a document's
transaction makes after its first write are answered from memory (`storage/known.py`), so for a
document nothing is sent before the end.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

# ("insert" | "delete:<shard key>" | "upsert", documents | (_id, shard key value) pairs | (_id, update) pairs)
Step = tuple[str, list[Any]]


@dataclass
class Overlay:
    """What a collection's pending writes make of the documents they name, by `_id`: a question
    about other ids is answered by the store alone, without sending what is pending first. Under
    group commit (storage/group_commit.py) the transactions of a group read the store in turn, and
    sending the writes of the earlier ones at each read cost a round trip per collection read."""

    # The document each pending insert leaves (the last one of its `_id`).
    inserted: dict[Any, dict[str, Any]] = field(default_factory=dict)
    deleted: set[Any] = field(default_factory=set)

    def named(self, document_id: Any) -> bool:
        return document_id in self.inserted or document_id in self.deleted

    def merged(self, stored: list[dict[str, Any]], matches: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The store's answer to a query as it will be once the pending writes are sent: the stored
        documents they leave alone, then the inserted ones `matches` accepts."""
        return [d for d in stored if not self.named(d["_id"])] + [d for d in self.inserted.values() if matches(d)]


class PendingWrites:
    def __init__(self) -> None:
        # session -> collection -> steps in the order they were asked for
        self._by_session: dict[int, dict[str, list[Step]]] = {}

    def start(self, session: AsyncClientSession) -> None:
        self._by_session[id(session)] = {}

    def discard(self, session: AsyncClientSession) -> None:
        self._by_session.pop(id(session), None)

    def _add(self, session: AsyncClientSession, collection: str, kind: str, items: list[Any]) -> None:
        steps = self._by_session[id(session)].setdefault(collection, [])
        if steps and steps[-1][0] == kind:
            steps[-1][1].extend(items)
        else:
            steps.append((kind, list(items)))

    def insert(self, session: AsyncClientSession, collection: str, documents: list[dict[str, Any]]) -> None:
        self._add(session, collection, "insert", documents)

    def delete(self, session: AsyncClientSession, collection: str, ids: list[Any], shard_key: str,
               values: list[Any]) -> None:
        """Documents by `_id`, each with its value of the collection's shard key (`shard_key`), so
        the delete reaches only the shards holding them (policies/sharding.json)."""
        self._add(session, collection, f"delete:{shard_key}", list(zip(ids, values, strict=True)))

    def upsert(self, session: AsyncClientSession, collection: str, document_id: Any, update: dict[str, Any]) -> None:
        """An update of one document by `_id`, inserting it when missing: sent with the others of its
        run as one `update` command."""
        self._add(session, collection, "upsert", [(document_id, update)])

    def waiting(self, session: AsyncClientSession | None, collections: Collection[str]) -> bool:
        """Whether anything is pending for `session` in these collections."""
        return session is not None and any(c in collections for c in self._by_session.get(id(session), {}))

    def overlay(self, session: AsyncClientSession | None, collection: str) -> Overlay | None:
        """The pending inserts and deletes of `collection` by `_id`; None when an upsert is pending
        there, whose result only the store knows (then send what is pending and ask the store)."""
        overlay = Overlay()
        steps = self._by_session.get(id(session), {}).get(collection, []) if session is not None else []
        for kind, items in steps:
            if kind == "insert":
                for document in items:
                    overlay.inserted[document["_id"]] = document
                    overlay.deleted.discard(document["_id"])
            elif kind.startswith("delete:"):
                for document_id, _ in items:
                    overlay.inserted.pop(document_id, None)
                    overlay.deleted.add(document_id)
            else:
                return None
        return overlay

    def collections(self, session: AsyncClientSession) -> set[str]:
        return set(self._by_session.get(id(session), {}))

    async def flush(self, db: AsyncDatabase[dict[str, Any]], session: AsyncClientSession,
                    collections: Collection[str] | None = None) -> None:
        """Send what is pending, of these collections only when named (the others stay pending)."""
        # Collections are independent; within one, steps keep their order, so a key deleted and
        # added again (or the reverse) ends as the last step left it.
        pending = self._by_session.get(id(session), {})
        for collection, steps in pending.items():
            if collections is not None and collection not in collections:
                continue
            for kind, items in steps:
                if kind == "insert":
                    await db[collection].insert_many(items, ordered=True, session=session)
                elif kind == "upsert":
                    await db[collection].bulk_write([UpdateOne({"_id": i}, u, upsert=True) for i, u in items],
                                                    ordered=True, session=session)
                else:
                    shard_key = kind.split(":", 1)[1]
                    await db[collection].delete_many({"_id": {"$in": [i for i, _ in items]},
                                                      shard_key: {"$in": sorted(set(v for _, v in items))}},
                                                     session=session)
        self._by_session[id(session)] = {} if collections is None else \
            {c: steps for c, steps in pending.items() if c not in collections}
