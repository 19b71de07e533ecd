"""The collections of subscriptions, next to the Subscription resources themselves.

- subscribers: one document per Subscription, written by its write rule in the Subscription's own
  transaction: the criteria's type (`rt`) and the one record its matches belong to if it names one
  (`pat`, "" if not): what the after-commit hook looks up by; whether it is
  delivering (`on`), its channel, and the identity of the caller who last set it (`caller`), whose
  view of the record every delivery is checked against; `due` while it has deliveries (set with
  each one appended, cleared only in a transaction that finds none left), so the worker's rounds
  look at those alone; `failures`, its endpoint's failures in a row.
- deliveries: one document per (subscription, outbox event) to send, keyed
  `<subscription>|<event id>`; the event id starts with the commit stamp, so key order within a
  subscription is commit order. Removed once sent (or found not to concern the subscriber).
- pings: the websocket notifications the delivery worker recorded, which every process serving a
  bound websocket reads and forwards (`n`, nanoseconds, orders them); kept a short while.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel

from fhir_server.security.callers import Caller, Kind
from fhir_server.security.scopes import Scopes
from fhir_server.storage.database import Database, create_indexes

SUBSCRIBERS = "subscribers"
DELIVERIES = "subscription_deliveries"
PINGS = "subscription_pings"
# The equality indexes the after-commit hook and the delivery worker look up by.
INDEXES = {
    SUBSCRIBERS: (IndexModel([("pat", ASCENDING)], name="i_pat"), IndexModel([("due", ASCENDING)], name="i_due")),
    DELIVERIES: (IndexModel([("sub", ASCENDING)], name="i_sub"),),
    PINGS: (IndexModel([("sub", ASCENDING)], name="i_sub"),),
}
# The delivery worker's lease (fhir_server.storage.leases.Lease).
LEASE_ID = "subscription-delivery"
# The identity fields a delivery runs under. Not the purpose of use: an emergency access (BTG) is
# one request's, never inherited by the notifications that follow it.
CALLER_FIELDS = ("ins", "idnatps", "profession", "organization", "client_id", "role", "patient", "record_patient",
                 "issuer", "own_key")


def caller_document(caller: Caller) -> dict[str, Any]:
    return {"kind": caller.kind, "id": caller.id, "scopes": str(caller.scopes),
            **{name: getattr(caller, name) for name in CALLER_FIELDS}}


def caller_of(document: dict[str, Any]) -> Caller:
    kind: Kind = document["kind"]
    # A subscription stored before `own_key` was kept reads as not signed here (the safer way).
    return Caller(kind, document["id"], Scopes.parse(document["scopes"]),
                  **{name: document.get(name) for name in CALLER_FIELDS if name in document})


async def ensure(database: Database) -> None:
    """Collections before any transaction (the embedded store cannot create one inside), and the
    equality indexes the hook and the worker look up by."""
    await database.ensure_collections(list(INDEXES))
    for name, indexes in INDEXES.items():
        await create_indexes(database.collection(name), indexes)
