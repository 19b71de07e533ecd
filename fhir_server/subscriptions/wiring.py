"""Subscriptions plugged into the server: the hooks and rules on the access path, the after-commit
hook that feeds deliveries, and the delivery worker (docs/ARCHITECTURE.md, Subscriptions)."""

from __future__ import annotations

from typing import Any

from fhir_server.config import Settings
from fhir_server.outbound import OutboundClient
from fhir_server.storage.repository import Repository
from fhir_server.subscriptions import resource, store
from fhir_server.subscriptions.delivery import DeliveryWorker
from fhir_server.subscriptions.matching import enqueue
from fhir_server.subscriptions.websocket import WEBSOCKET_EXTENSION, WEBSOCKET_PATH


async def start(repository: Repository, settings: Settings, disabled_clients: set[str],
                outbound: OutboundClient) -> DeliveryWorker:
    """Register before the outbox dispatcher is made (it runs only while an after-commit hook is
    registered); the worker is started here and stopped by the caller."""
    await store.ensure(repository.database)
    hooks = repository.hooks
    hooks.before_writes.append(resource.accept(repository.resource_types, outbound.policy))
    hooks.search_filters.append(resource.own_only)
    repository.write_rules.setdefault("Subscription", []).append(resource.record)
    worker = DeliveryWorker(repository, settings, disabled_clients, outbound)
    hooks.after_commit_batches.append(enqueue(repository, worker.wake))
    worker.start()
    return worker


def advertise(statement: dict[str, Any], base: str) -> dict[str, Any]:
    """The websocket URL in the CapabilityStatement (R4's capabilitystatement-websocket extension)."""
    root = base.rsplit("/fhir", 1)[0]
    url = root.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + WEBSOCKET_PATH
    for rest in statement.get("rest") or []:
        rest.setdefault("extension", []).append({"url": WEBSOCKET_EXTENSION, "valueUri": url})
    return statement
