"""The outbox dispatcher: pending events, in commit order, to the after-commit hooks.

One process at a time dispatches: it holds a lease in the store (fhir_server.storage.outbox) and
renews it while it runs; another process (a second worker, a restart after a crash) takes over
once the lease has expired. A hook that raises leaves its event, and every later one, pending
until the next round, so delivery is at least once and never reordered. `Hooks.committed` (each
event) and `Hooks.committed_batch` (the events of one round, once their per-event hooks ran) are
called from here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fhir_server.storage.database import Database
from fhir_server.storage.hooks import Hooks
from fhir_server.storage.leases import in_rounds, stop_rounds
from fhir_server.storage.outbox import OutboxStore

log = logging.getLogger("fhir_server.events")
LEASE_SECONDS = 10.0
# How often pending events are looked for when no local commit woke the dispatcher (other
# processes' commits, events left by a failed hook); well under the lease, which it renews.
POLL_SECONDS = 1.0
BATCH = 100


class Dispatcher:
    def __init__(self, database: Database, hooks: Hooks) -> None:
        self.store = OutboxStore(database)
        self.hooks = hooks
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-dispatcher")

    def wake(self) -> None:
        """A local commit wrote events: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is None:
            return
        await stop_rounds(self._task, self.store.lease, LEASE_SECONDS, log, "outbox")

    async def _run(self) -> None:
        await in_rounds(self._wake, self._round, POLL_SECONDS, log, "outbox dispatch")

    async def _round(self) -> int:
        """How many events were delivered. A lease renewed less than half of it ago is still
        held: each commit wakes the dispatcher, and renewing it every round cost three round
        trips (read, compare-and-set, commit) per document."""
        return await self._drain() if await self._still_held() else 0

    async def _hold_lease(self) -> bool:
        return await self.store.lease.hold(LEASE_SECONDS)

    async def _still_held(self) -> bool:
        """Renewed once half of it has run, so slow deliveries never outlast the lease."""
        return self.store.lease.fresh(LEASE_SECONDS / 2) or await self._hold_lease()

    async def _drain(self) -> int:
        total = 0
        while True:
            events = await self.store.pending(BATCH)
            delivered: list[dict[str, Any]] = []
            try:
                for event in events:
                    if not await self._still_held():
                        break
                    await self.hooks.committed(event)
                    delivered.append(event)
            except Exception as exc:  # noqa: BLE001 - a hook's failure must not stop the dispatcher
                log.warning("after-commit hook failed on %s (retried): %s", events[len(delivered)]["_id"], exc)
            if delivered:
                try:
                    await self.hooks.committed_batch(delivered)
                except Exception as exc:  # noqa: BLE001 - as above; the round's events stay pending
                    log.warning("after-commit hook failed on the events from %s (retried): %s", delivered[0]["_id"], exc)
                    return total
                await self.store.delivered([event["_id"] for event in delivered])
                total += len(delivered)
            if len(delivered) < BATCH:
                return total
