"""The outbox dispatcher: pending events, in commit order, to the after-commit hooks.

One process at a time dispatches: it holds a lease, a document of the `leases` collection naming
its owner and an expiry it renews while it runs. Another process (a second worker, a restart
after a crash) takes over once the lease has expired. A hook that raises leaves its event, and
every later one, pending until the next round, so delivery is at least once and never reordered.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from fhir_server.storage.database import LEASES, Database
from fhir_server.storage.hooks import Hooks
from fhir_server.storage.outbox import OUTBOX

log = logging.getLogger("fhir_server.events")
LEASE_ID = "outbox-dispatcher"
LEASE_SECONDS = 10.0
# How often pending events are looked for when no local commit woke the dispatcher (other
# processes' commits, events left by a failed hook).
POLL_SECONDS = 1.0
BATCH = 100


class Dispatcher:
    def __init__(self, database: Database, hooks: Hooks) -> None:
        self.database = database
        self.hooks = hooks
        self.owner = uuid.uuid4().hex
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
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self._release()

    async def _run(self) -> None:
        while True:
            try:
                if await self._hold_lease():
                    await self._drain()
            except PyMongoError as exc:
                log.warning("outbox dispatch deferred: %s", exc)
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _hold_lease(self) -> bool:
        """Take or renew the lease; False while another live process holds it."""
        now = datetime.now(timezone.utc)
        until = now + timedelta(seconds=LEASE_SECONDS)
        leases = self.database.collection(LEASES)
        async with self.database.gate.read():
            lease = await leases.find_one({"_id": LEASE_ID})
        if lease is not None and lease["owner"] != self.owner and lease["until"] > now:
            return False

        async def take(session: Any) -> bool:
            if lease is None:
                try:
                    await leases.insert_one({"_id": LEASE_ID, "owner": self.owner, "until": until}, session=session)
                except DuplicateKeyError:
                    return False
                return True
            # Compare-and-set on what was read: of two processes taking an expired lease, one wins.
            taken = await leases.update_one({"_id": LEASE_ID, "owner": lease["owner"], "until": lease["until"]},
                                            {"$set": {"owner": self.owner, "until": until}}, session=session)
            return taken.matched_count == 1

        return await self.database.in_transaction(take)

    async def _release(self) -> None:
        async def release(session: Any) -> None:
            await self.database.collection(LEASES).update_one(
                {"_id": LEASE_ID, "owner": self.owner},
                {"$set": {"until": datetime.fromtimestamp(0, timezone.utc)}}, session=session)

        try:
            await self.database.in_transaction(release)
        except PyMongoError as exc:
            log.warning("outbox lease not released (it expires in %ss): %s", LEASE_SECONDS, exc)

    async def _drain(self) -> None:
        outbox = self.database.collection(OUTBOX)
        while True:
            async with self.database.gate.read():
                events = await outbox.find({"done": False}).sort("_id", 1).limit(BATCH).to_list(length=BATCH)
            delivered: list[str] = []
            try:
                for event in events:
                    await self.hooks.committed(event)
                    delivered.append(event["_id"])
            except Exception:  # noqa: BLE001 - a hook's failure must not stop the dispatcher
                log.exception("after-commit hook failed on %s; it is retried", events[len(delivered)]["_id"])
            if delivered:
                await self._mark_done(delivered)
            if len(delivered) < BATCH:
                return

    async def _mark_done(self, ids: list[str]) -> None:
        # One equality per event: a range could mark an event committed meanwhile with an earlier
        # stamp, and the embedded store scans for `$in`.
        async def mark(session: Any) -> None:
            for event_id in ids:
                await self.database.collection(OUTBOX).update_one({"_id": event_id}, {"$set": {"done": True}},
                                                                  session=session)

        await self.database.in_transaction(mark)
