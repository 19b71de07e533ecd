"""The group commit: concurrent requests' AuditEvents written together, each request released only
once the batch holding its events is stored.

A request hands its events to `write` and waits. One flusher runs while events wait: it gathers
for `window` seconds (or until `most` events are waiting), writes them with one insert, then
releases every waiter of that batch; meanwhile new events gather for the next batch. A store error
fails every waiter of the batch (AuditUnavailable): their answers become 503, none is sent
unaudited (../shared/DECISIONS.md, "Audit and outbox").
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from fhir_server.audit.store import AuditStore, AuditUnavailable
from fhir_server.storage import command_log

# The request label of the audit writes in the command log (fhir_server.storage.command_log).
GROUP_COMMIT = "audit group commit"


class AuditWriter:
    def __init__(self, store: AuditStore, window: float, most: int) -> None:
        self.store = store
        self.window = window
        self.most = most
        self._waiting: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._count = 0
        self._full = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, documents: list[dict[str, Any]]) -> None:
        """Return once `documents` are durably stored; raise AuditUnavailable when they could not be."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((documents, done))
        self._count += len(documents)
        if self._count >= self.most:
            self._full.set()
        if self._flusher is None or self._flusher.done():
            # The flusher outlives the request that started it and writes other requests' events
            # too: the command log names it for what it is, not for that request.
            context = contextvars.copy_context()
            context.run(command_log.attribute, GROUP_COMMIT)
            self._flusher = asyncio.create_task(self._flush(), name="audit-group-commit", context=context)
        # The batch is written whether or not this request is still waiting for it.
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._waiting:
            if self.window > 0 and self._count < self.most:
                try:
                    await asyncio.wait_for(self._full.wait(), self.window)
                except TimeoutError:
                    pass
            batch, self._waiting, self._count = self._waiting, [], 0
            self._full.clear()
            documents = [d for docs, _ in batch for d in docs]
            error: AuditUnavailable | None = None
            try:
                await self.store.insert(documents)
            except AuditUnavailable as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - whatever the store did, its waiters must not hang
                error = AuditUnavailable(f"{exc.__class__.__name__}: {exc}")
            for _, done in batch:
                if done.done():
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

    async def close(self) -> None:
        """Let the batch being written finish, so no answered request's event is lost at shutdown."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
