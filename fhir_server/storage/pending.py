"""Writes a transaction can defer to its end: history entries and identifier lookup keys.

Nothing inside a transaction reads them back (history is read by other requests, lookup keys
are resolved before a Bundle writes), so they are sent as one insert_many/delete_many per run
of the same kind, just before commit, instead of one round trip per resource: a CDA document
produced 28 round trips to the store, 9 of them history and lookup writes.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

Step = tuple[str, list[Any]]  # ("insert" | "delete", documents or (_id, shard key value) pairs)


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

    async def flush(self, db: AsyncDatabase[dict[str, Any]], session: AsyncClientSession) -> None:
        # Collections are independent; within one, steps keep their order, so a key deleted and
        # added again (or the reverse) ends as the last step left it.
        for collection, steps in self._by_session.get(id(session), {}).items():
            for kind, items in steps:
                if kind == "insert":
                    await db[collection].insert_many(items, ordered=True, session=session)
                else:
                    shard_key = kind.split(":", 1)[1]
                    await db[collection].delete_many({"_id": {"$in": [i for i, _ in items]},
                                                      shard_key: {"$in": sorted(set(v for _, v in items))}},
                                                     session=session)
        self._by_session[id(session)] = {}
