"""Claims: uniqueness that a read-then-write decides, made a write the store itself serialises.

A conditional create (If-None-Exist, a transaction's `ifNoneExist`, a conditional update that
finds nothing) and an ITI-65 deposit (a masterIdentifier not yet in the record) first look for a
match, then write. On the embedded store the writer gate runs those two steps for one writer at a
time across processes, but on MongoDB two transactions can both see no match and both write.

So the write also upserts one document per rule, `{_id: "<Type>?<canonical criteria>"}`, in the
same transaction, with `$inc`: of two concurrent transactions the second meets a write conflict
on that document (snapshot isolation: it was changed after its snapshot began), is run again by
the driver's `with_transaction`, and then finds the first's resource. The document holds no
state anyone reads: it only makes two concurrent claims collide. Sharded by `_id`
(policies/sharding.json), so a claim is one targeted write.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

# The collection's name is also in policies/sharding.json (its shard key).
CLAIMS = "claims"


def claim_key(resource_type: str, criteria: str | list[tuple[str, str]]) -> str:
    """`Type?criteria`, with the criteria decoded and sorted, so one condition, however written,
    is one claim (`b=2&a=1` and `a=1&b=%32` alike)."""
    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True) if isinstance(criteria, str) else criteria
    return f"{resource_type}?{urlencode(sorted(pairs))}"


async def claim(db: AsyncDatabase[dict[str, Any]], session: AsyncClientSession | None, resource_type: str,
                criteria: str | list[tuple[str, str]]) -> None:
    """Claim `criteria` for a resource of `resource_type` about to be created in `session`'s transaction."""
    await db[CLAIMS].update_one({"_id": claim_key(resource_type, criteria)}, {"$inc": {"n": 1}}, upsert=True,
                                session=session)
