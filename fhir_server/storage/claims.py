"""Claims: uniqueness that a read-then-write decides, made a write the store itself serialises.

A conditional create (If-None-Exist, a transaction's `ifNoneExist`, a conditional update that
finds nothing) and an ITI-65 deposit (a masterIdentifier not yet in the record) first look for a
match, then write. On the embedded store the writer gate runs those two steps for one writer at a
time across processes, but on MongoDB two transactions can both see no match and both write.

So the write also upserts one document per rule, keyed by the SHA-256 of `<Type>?<canonical
criteria>` (criteria are user input of any length; the key stays 64 characters, within any
store's index key limit, and that form is kept readable in `c`), in the same transaction, with `$inc`: of two concurrent transactions the second meets a write conflict
on that document (snapshot isolation: it was changed after its snapshot began), is run again by
the driver's `with_transaction`, and then finds the first's resource. The document holds no
state anyone reads: it only makes two concurrent claims collide. Sharded by `_id`
(policies/sharding.json), so a claim is one targeted write. It is sent with the transaction's
other deferred writes, just before commit (fhir_server.storage.pending: a document's claims are
one `update` command): the collision happens there as well, and nothing reads a claim back.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlencode

from pymongo.asynchronous.client_session import AsyncClientSession

from fhir_server.storage.pending import PendingWrites

# The collection's name is also in policies/sharding.json (its shard key).
CLAIMS = "claims"


def canonical(resource_type: str, criteria: str | list[tuple[str, str]]) -> str:
    """`Type?criteria`, with the criteria decoded and sorted, so one condition, however written,
    is one claim (`b=2&a=1` and `a=1&b=%32` alike)."""
    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True) if isinstance(criteria, str) else criteria
    return f"{resource_type}?{urlencode(sorted(pairs))}"


def claim_key(resource_type: str, criteria: str | list[tuple[str, str]]) -> str:
    """The claim's `_id`: a fixed-length digest of its canonical form."""
    return _digest(canonical(resource_type, criteria))


def _digest(form: str) -> str:
    return hashlib.sha256(form.encode("utf-8")).hexdigest()


def claim(pending: PendingWrites, session: AsyncClientSession | None, resource_type: str,
          criteria: str | list[tuple[str, str]]) -> None:
    """Claim `criteria` for a resource of `resource_type` about to be created in `session`'s transaction."""
    assert session is not None, "a claim is made inside the transaction of the write it guards"
    form = canonical(resource_type, criteria)
    pending.upsert(session, CLAIMS, _digest(form), {"$inc": {"n": 1}, "$setOnInsert": {"c": form}})
