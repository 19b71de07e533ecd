"""The delivery worker: pending deliveries, in commit order per subscription, to their channel.

One process at a time delivers: it holds a lease in the store (`subscription-delivery`, taken and
renewed like the outbox dispatcher's) and another process takes over within seconds of its
holder's death. Everything it works from is in the store (fhir_server.subscriptions.store), so a
restart resumes where the last holder stopped: a delivery is removed only after its endpoint
answered 2xx, so delivery is at least once, and a repeat carries the same `X-Event-Id`.

Before each delivery the subscriber's view is checked: the criteria plus `_id` are searched as the
caller who set the subscription up, through the repository (the one access path), so a hidden or
masked resource, or one in a record the subscriber may not open, is never notified; the resource
sent passes the resource-read hook like any response.

A failing endpoint holds back its own subscription only: its head delivery is retried after
`retry`, doubling each time (at most MAX_BACKOFF); after `error_after` failures in a row the
Subscription's status is `error` with the reason in `error`; the next success makes it `active`.
Notifications leave through the outbound client (fhir_server.outbound): an endpoint the policy
refuses at delivery (its name now resolves to a private address) is never connected to, and puts
the Subscription in `error` at once; a redirect is not followed (a failure like any non-2xx).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

import orjson
from pymongo.asynchronous.client_session import AsyncClientSession

from fhir_server.config import Settings
from fhir_server.errors import FhirError
from fhir_server.interactions.output import outgoing
from fhir_server.outbound import OutboundClient, OutboundError, Refused
from fhir_server.search.request import parse_request
from fhir_server.storage.documents import Stored
from fhir_server.storage.leases import Lease, in_rounds, stop_rounds
from fhir_server.storage.repository import Repository
from fhir_server.subscriptions.resource import DELIVERING, DELIVERY_CALLER, criteria_of
from fhir_server.subscriptions.store import DELIVERIES, LEASE_ID, PINGS, SUBSCRIBERS, caller_of

log = logging.getLogger("fhir_server.subscriptions")
LEASE_SECONDS = 10.0
# How often deliveries are looked for when no local event woke the worker (another process's
# events, retries coming due); well under the lease, which each round renews.
POLL_SECONDS = 0.5
BATCH = 100
MAX_BACKOFF = 300.0
# Websocket pings are read by the processes serving bound sockets within a second; older ones go.
PING_KEEP_SECONDS = 120.0
FHIR_JSON = "application/fhir+json"


class Failed(Exception):
    """The endpoint did not take the notification; the message becomes Subscription.error."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        # The outbound policy forbade the endpoint: no retry will fare better until DNS changes.
        self.refused = refused


def _headers(channel: dict[str, Any]) -> dict[str, str]:
    """R4 `channel.header`: "Name: value" strings, sent with each notification."""
    headers: dict[str, str] = {}
    for line in channel.get("header") or []:
        name, _, value = str(line).partition(":")
        if name.strip() and value.strip():
            headers[name.strip()] = value.strip()
    return headers


def _ended(resource: dict[str, Any]) -> bool:
    end = resource.get("end")
    if not isinstance(end, str):
        return False
    try:
        moment = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)) <= datetime.now(timezone.utc)


class DeliveryWorker:
    def __init__(self, repository: Repository, settings: Settings, disabled_clients: set[str],
                 outbound: OutboundClient) -> None:
        self.repository = repository
        # Kept current by the client registry: a disabled client's subscriptions stop being notified at once.
        self.disabled_clients = disabled_clients
        self.database = repository.database
        self.lease = Lease(self.database, LEASE_ID)
        self.base_url = settings.base_url or ""
        self.retry = settings.subscription_retry_ms / 1000
        self.error_after = settings.subscription_error_after
        self.timeout = settings.subscription_timeout_ms / 1000
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._purged = 0.0
        self.outbound = outbound

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="subscription-delivery")

    def wake(self) -> None:
        """New deliveries were appended in this process: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is None:
            return
        await stop_rounds(self._task, self.lease, LEASE_SECONDS, log, "subscription")

    async def _run(self) -> None:
        await in_rounds(self._wake, self._held_round, POLL_SECONDS, log, "subscription delivery")

    async def _held_round(self) -> None:
        if await self._hold_lease():
            await self._round()

    async def _hold_lease(self) -> bool:
        return await self.lease.hold(LEASE_SECONDS)

    async def _still_held(self) -> bool:
        """Renewed once half of it has run, so a long backlog never outlasts the lease."""
        return self.lease.fresh(LEASE_SECONDS / 2) or await self._hold_lease()

    async def _round(self) -> None:
        async with self.database.gate.read():
            subscribers = await self.database.collection(SUBSCRIBERS).find({"due": True}).to_list(None)
        # Each subscription in order, the subscriptions side by side: a slow endpoint delays only its own.
        outcomes = await asyncio.gather(*(self._serve(s) for s in subscribers), return_exceptions=True)
        for subscriber, outcome in zip(subscribers, outcomes):
            if isinstance(outcome, Exception):
                log.warning("Subscription/%s delivery deferred: %r", subscriber["_id"], outcome)
        if time.time() - self._purged > PING_KEEP_SECONDS / 4:
            cutoff = time.time_ns() - int(PING_KEEP_SECONDS * 1e9)
            await self.database.in_transaction(
                lambda session: self.database.collection(PINGS).delete_many({"n": {"$lt": cutoff}}, session=session))
            self._purged = time.time()

    async def _serve(self, subscriber: dict[str, Any]) -> None:
        deliveries = self.database.collection(DELIVERIES)
        while True:
            async with self.database.gate.read():
                pending = await deliveries.find({"sub": subscriber["_id"]}).sort("_id", 1).limit(BATCH).to_list(BATCH)
            if not pending:
                await self._settled(subscriber["_id"])
                return
            current = await self.repository.current("Subscription", subscriber["_id"], None)
            if current is not None and not current.deleted and _ended(current.resource or {}) \
                    and (current.resource or {}).get("status") in DELIVERING:
                # R4 `end`: when the server turns the subscription off (its deliveries go next round).
                await self._set_status(current, "off", None)
                return
            if current is None or current.deleted or (current.resource or {}).get("status") not in DELIVERING:
                await self._drop(subscriber["_id"], pending, deleted=current is None or current.deleted)
                return
            for delivery in pending:
                if delivery["at"] > time.time() or not await self._still_held():
                    return
                try:
                    await self._deliver(subscriber, delivery)
                except Failed as exc:
                    await self._failed(subscriber, current, delivery, str(exc), refused=exc.refused)
                    return
                await self._update(lambda s, d=delivery: deliveries.delete_one({"_id": d["_id"]}, session=s))
                if subscriber.get("failures"):
                    subscriber["failures"] = 0
                    await self._update(lambda s: self.database.collection(SUBSCRIBERS).update_one(
                        {"_id": subscriber["_id"]}, {"$set": {"failures": 0}}, session=s))
                if (current.resource or {}).get("status") == "error":
                    current = await self._set_status(current, "active", None) or current
            if len(pending) < BATCH:
                return

    async def _settled(self, subscription: str) -> None:
        """Not due any more, unless a delivery was appended meanwhile (checked in the same
        transaction, so an append is never left unseen: it sets `due` again or is found here)."""
        async def settle(session: AsyncClientSession) -> None:
            if await self.database.collection(DELIVERIES).find_one({"sub": subscription}, {"_id": 1},
                                                                   session=session) is None:
                await self.database.collection(SUBSCRIBERS).update_one(
                    {"_id": subscription}, {"$set": {"due": False}}, session=session)

        await self.database.in_transaction(settle)

    async def _update(self, work: Any) -> None:
        async def run(session: AsyncClientSession) -> None:
            await work(session)

        await self.database.in_transaction(run)

    async def _drop(self, subscription: str, pending: list[dict[str, Any]], *, deleted: bool) -> None:
        """Switched off or deleted: R4 sends nothing then, and nothing is kept for later."""
        async def drop(session: AsyncClientSession) -> None:
            for delivery in pending:
                await self.database.collection(DELIVERIES).delete_one({"_id": delivery["_id"]}, session=session)
            if deleted:
                await self.database.collection(SUBSCRIBERS).delete_one({"_id": subscription}, session=session)

        await self.database.in_transaction(drop)

    async def _failed(self, subscriber: dict[str, Any], current: Stored, delivery: dict[str, Any], reason: str,
                      *, refused: bool) -> None:
        tries = delivery["tries"] + 1
        failures = subscriber.get("failures", 0) + 1
        subscriber["failures"] = failures
        wait = min(MAX_BACKOFF, self.retry * 2 ** (tries - 1))
        log.info("Subscription/%s: %s (retry %d in %.1fs)", subscriber["_id"], reason, tries, wait)

        async def record(session: AsyncClientSession) -> None:
            await self.database.collection(DELIVERIES).update_one(
                {"_id": delivery["_id"]}, {"$set": {"tries": tries, "at": time.time() + wait}}, session=session)
            await self.database.collection(SUBSCRIBERS).update_one(
                {"_id": subscriber["_id"]}, {"$set": {"failures": failures}}, session=session)

        await self.database.in_transaction(record)
        resource = current.resource or {}
        if (refused or failures >= self.error_after) and (resource.get("status") != "error" or resource.get("error") != reason):
            await self._set_status(current, "error", reason)

    async def _set_status(self, current: Stored, status: str, error: str | None) -> Stored | None:
        resource = {k: v for k, v in (current.resource or {}).items() if k != "error"}
        resource["status"] = status
        if error is not None:
            resource["error"] = error
        try:
            result = await self.repository.update(DELIVERY_CALLER, "Subscription", current.id, resource,
                                                  if_match=current.version)
        except FhirError as exc:
            # Changed by its owner meanwhile: the next round decides on their version.
            log.info("Subscription/%s status not set to %s: %s", current.id, status, exc)
            return None
        return result.stored

    async def _deliver(self, subscriber: dict[str, Any], delivery: dict[str, Any]) -> None:
        caller = caller_of(subscriber["caller"])
        if caller.client_id is not None and caller.client_id in self.disabled_clients:
            return  # as its tokens are refused, so are its notifications
        resource_type, _, resource_id = delivery["rid"].partition("/")
        try:
            _, params = criteria_of(subscriber)
            result = await self.repository.search(caller, resource_type, parse_request([*params, ("_id", resource_id)]),
                                                  base_url=self.base_url, strict=True, count=1)
        except FhirError:
            return  # not for this subscriber: a record they may not open, or criteria that no longer run
        if not result.matches:
            return  # hidden from the subscriber, or no longer matching
        channel = subscriber["channel"]
        if channel.get("type") == "websocket":
            await self._update(lambda s: self.database.collection(PINGS).insert_one(
                {"sub": subscriber["_id"], "n": time.time_ns()}, session=s))
            return
        headers = {**_headers(channel), "X-Subscription-Id": subscriber["_id"], "X-Event-Id": delivery["event"]}
        endpoint = str(channel.get("endpoint") or "")
        try:
            if channel.get("payload"):
                shown = await outgoing(self.repository, caller, result.matches[0])
                if shown is None:
                    return
                # R4 rest-hook with a payload: the endpoint is a service base, the resource is PUT to it.
                answer = await self.outbound.request("PUT", f"{endpoint.rstrip('/')}/{resource_type}/{resource_id}",
                                                     content=orjson.dumps(shown),
                                                     headers={**headers, "Content-Type": FHIR_JSON}, timeout=self.timeout)
            else:
                answer = await self.outbound.request("POST", endpoint, headers=headers, timeout=self.timeout)
        except Refused as exc:
            raise Failed(f"The endpoint is refused by the outbound policy: {exc}", refused=True) from None
        except OutboundError as exc:
            raise Failed(f"The endpoint {endpoint} could not be reached: {exc}") from None
        if 300 <= answer.status < 400:
            raise Failed(f"The endpoint {endpoint} answered HTTP {answer.status} (redirects are not followed)")
        if not 200 <= answer.status < 300:
            raise Failed(f"The endpoint {endpoint} answered HTTP {answer.status}")
