"""Leases in the store: one process at a time does a job (dispatching the outbox, sending mail),
and another takes over once the holder stops renewing (a crash, a shutdown).

Times are epoch seconds and each change bumps `n`: the compare-and-set compares an integer,
which every store compares exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError, PyMongoError

from fhir_server.observability import metrics
from fhir_server.observability.logs import event
from fhir_server.storage.database import LEASES, Database


class Lease:
    def __init__(self, database: Database, lease_id: str) -> None:
        self.database = database
        self.leases = database.collection(LEASES)
        self.lease_id = lease_id
        # Who holds it: made with the Lease, which each worker builds once it runs in its own
        # process (`serve --workers N` forks after create_app; an owner made before the fork would
        # be every worker's, and each would believe it held the lease).
        self.owner = uuid.uuid4().hex
        # When this process last took or renewed it (monotonic), 0 when it does not hold it; one
        # renewal at a time, however many of the worker's tasks ask.
        self._renewed = 0.0
        self._renewing = asyncio.Lock()

    def fresh(self, within: float) -> bool:
        """Whether this process renewed the lease less than `within` seconds ago: held without
        asking the store, which workers renew once part of the lease has run."""
        return time.monotonic() - self._renewed < within

    async def hold(self, seconds: float) -> bool:
        """Take or renew the lease for `seconds`; False while another live owner holds it."""
        async with self._renewing:
            held = await self._take(self.owner, seconds)
            self._renewed = time.monotonic() if held else 0.0
            return held

    async def _take(self, owner: str, seconds: float) -> bool:
        now = time.time()
        async with self.database.gate.read():
            lease = await self.leases.find_one({"_id": self.lease_id})
        if lease is not None and lease["owner"] != owner and lease["until"] > now:
            return False

        async def take(session: AsyncClientSession) -> bool:
            if lease is None:
                try:
                    await self.leases.insert_one({"_id": self.lease_id, "owner": owner, "until": now + seconds, "n": 0},
                                                 session=session)
                except DuplicateKeyError:
                    return False
                return True
            # Of two processes taking an expired lease, one wins.
            taken = await self.leases.update_one(
                {"_id": self.lease_id, "n": lease["n"]},
                {"$set": {"owner": owner, "until": now + seconds, "n": lease["n"] + 1}}, session=session)
            return taken.matched_count == 1

        return bool(await self.database.in_transaction(take))

    async def release(self) -> None:
        async def release(session: AsyncClientSession) -> None:
            await self.leases.update_one({"_id": self.lease_id, "owner": self.owner}, {"$set": {"until": 0.0}},
                                         session=session)

        await self.database.in_transaction(release)


async def in_rounds(wake: asyncio.Event, one_round: Callable[[], Awaitable[int | None]], every: float,
                    log: logging.Logger, what: str) -> None:
    """A background worker's life: a round now, then one every `every` seconds or as soon as `wake`
    is set. A failed round (a store hiccup) is logged as `what` deferred; the next one tries again.

    Each round is a `job` line and counted (fhir_server.observability): at info when it did
    something (`one_round` returned how many things it did), at debug when idle, as most rounds of
    a worker polling every second are."""
    while True:
        wake.clear()
        started = time.perf_counter()
        try:
            done = await one_round()
        except Exception:  # noqa: BLE001 - the worker outlives a store hiccup
            log.exception("%s deferred", what)
            job_ran(log, what, "failed", time.perf_counter() - started, None)
        else:
            job_ran(log, what, "ok", time.perf_counter() - started, done)
        try:
            await asyncio.wait_for(wake.wait(), every)
        except TimeoutError:
            pass


def job_ran(log: logging.Logger, job: str, outcome: str, seconds: float, done: int | None) -> None:
    observed = metrics.current()
    if observed is not None:
        observed.job(job, outcome, seconds)
    event(log, "job", logging.INFO if done or outcome != "ok" else logging.DEBUG, job=job, outcome=outcome,
          done=done, duration_ms=round(seconds * 1000, 2))


def reloading(every: float, reload: Callable[[], Awaitable[None]], log: logging.Logger, what: str) -> asyncio.Task[None]:
    """A task that calls `reload` every `every` seconds (what each process keeps in memory of a
    registry in the store); a store error leaves the last copy in use and is logged, `what` naming it."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await reload()
            except PyMongoError as exc:
                log.warning("cannot reload %s: %s", what, exc)

    return asyncio.create_task(loop())


# How long a stop waits for a cancelled background task to end.
CANCEL_WAIT_SECONDS = 5.0


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Stop a background task and wait until it has stopped (at most CANCEL_WAIT_SECONDS)."""
    if task is None:
        return
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=CANCEL_WAIT_SECONDS)
    if not done:
        # Seen with the store gone: a wait inside the driver took the cancellation for its own and
        # the task went on to wait again. A stop must not hang on it; the process is ending.
        logging.getLogger("fhir_server").warning("a background task did not end within %s s of its cancellation; "
                                                 "left behind", CANCEL_WAIT_SECONDS)
        return
    failure = None if task.cancelled() else task.exception()
    if failure is not None:
        raise failure


async def stop_rounds(task: asyncio.Task[None], lease: Lease, seconds: float,
                      log: logging.Logger, what: str) -> None:
    """Stop a worker's rounds, then release its lease so another process takes over at once; a
    release the store refuses only leaves the lease to expire (`seconds`)."""
    await cancel(task)
    try:
        await lease.release()
    except PyMongoError as exc:
        log.warning("%s lease not released (it expires in %ss): %s", what, seconds, exc)
