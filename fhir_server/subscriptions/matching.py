"""The after-commit hook of subscriptions: from outbox events to durable deliveries.

It must never raise for a subscriber's sake (the dispatcher stops at a failing hook, and everyone
after would wait): it only looks up, once for a dispatch round's events (a batch hook, see
fhir_server.storage.hooks), the active subscriptions bound to their records or to none (`pat`,
fhir_server.subscriptions.resource.criteria_patient), and for each event keeps those on its type
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

    async def candidates(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The active subscriptions bound to the records of `events` or to none: one look-up for
        a dispatch round (a document's resources are one round's events), not two per event."""
        records = sorted({str(e["pat"]) for e in events if e.get("pat")} | {""})
        query: dict[str, Any] = {"pat": records[0] if len(records) == 1 else {"$in": records}, "on": True}
        async with database.gate.read():
            return await subscribers.find(query).to_list(None)

    async def committed(events: list[dict[str, Any]]) -> None:
        writes = [e for e in events if e.get("kind") == "write" and e.get("method") != "DELETE"]
        found = await candidates(writes) if writes else []
        for event in writes:
            resource_type, _, resource_id = event["rid"].partition("/")
            bound = {event.get("pat") or "", ""}
            chosen = [s["_id"] for s in found if s.get("rt") == resource_type and s.get("pat") in bound
                      and await matching(s, resource_type, resource_id)]
            if chosen:
                await deliver(event, chosen)

    async def deliver(event: dict[str, Any], chosen: list[str]) -> None:
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
