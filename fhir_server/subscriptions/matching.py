"""The after-commit hook of subscriptions: from an outbox event to durable deliveries.

It must never raise for a subscriber's sake (the dispatcher stops at a failing hook, and everyone
after would wait): it only looks up the active subscriptions on the event's type bound to the
event's record or to none (`pat`, fhir_server.subscriptions.resource.criteria_patient), keeps those
whose criteria the written resource matches (the server's own view: whether the subscriber may
read it is decided at delivery, as that subscriber), and appends one delivery per subscription in
one transaction. Only a store failure raises, and the dispatcher then offers the event again:
deliveries already written are kept (their key is the subscription and the event), so a
delivery is appended once per event even then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession

from fhir_server.errors import FhirError
from fhir_server.subscriptions.resource import criteria_of
from fhir_server.subscriptions.store import DELIVERIES, SUBSCRIBERS

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository

log = logging.getLogger("fhir_server.subscriptions")


def delivery_id(subscription: str, event_id: str) -> str:
    return f"{subscription}|{event_id}"


def enqueue(repository: Repository, wake: Callable[[], None]) -> Any:
    database = repository.database
    subscribers = database.collection(SUBSCRIBERS)
    deliveries = database.collection(DELIVERIES)

    async def matching(subscription: dict[str, Any], resource_type: str, resource_id: str) -> bool:
        try:
            _, params = criteria_of({"criteria": subscription["criteria"]})
            return bool(await repository.ids(resource_type, [*params, ("_id", resource_id)], None, 1))
        except FhirError as exc:
            # Stored before a change of this server's search parameters: nothing it could match.
            log.warning("Subscription/%s criteria no longer run (%s): not notified", subscription["_id"], exc)
            return False

    async def committed(event: dict[str, Any]) -> None:
        if event.get("kind") != "write" or event.get("method") == "DELETE":
            return
        resource_type, _, rest = event["rid"].partition("/")
        # Those bound to the event's record, and those bound to none: two equalities each.
        records = [event["pat"], ""] if event.get("pat") else [""]
        candidates = []
        async with database.gate.read():
            for pat in records:
                candidates += await subscribers.find({"pat": pat, "rt": resource_type, "on": True}).to_list(None)
        if not candidates:
            return
        resource_id = rest
        chosen = [s["_id"] for s in candidates if await matching(s, resource_type, resource_id)]
        if not chosen:
            return

        async def append(session: AsyncClientSession) -> None:
            for subscription in chosen:
                key = delivery_id(subscription, event["_id"])
                if await deliveries.find_one({"_id": key}, {"_id": 1}, session=session) is None:
                    await deliveries.insert_one({"_id": key, "sub": subscription, "event": event["_id"],
                                                 "rid": event["rid"], "vid": event["vid"], "tries": 0, "at": 0.0},
                                                session=session)
                # What the worker looks for: only subscriptions with something to send.
                await subscribers.update_one({"_id": subscription}, {"$set": {"due": True}}, session=session)

        await database.in_transaction(append)
        wake()

    return committed
