"""Isolation for stores whose transactions do not isolate (the embedded store).

On a MongoDB replica set, multi-document transactions give snapshot isolation and this gate is
open. The embedded store rolls back an aborted transaction but lets others see writes before
commit, and it serialises writers on one SQLite file anyway. So, in one server process:
every write holds the writer mutex (no two store transactions interleave), and a multi-resource
transaction additionally excludes readers until it commits, so nobody reads half of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Gate:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._writer = asyncio.Lock()
        self._readers = 0
        self._no_readers = asyncio.Event()
        self._no_readers.set()
        self._bundle_open = asyncio.Event()
        self._bundle_open.set()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        while not self._bundle_open.is_set():
            await self._bundle_open.wait()
        self._readers += 1
        self._no_readers.clear()
        try:
            yield
        finally:
            self._readers -= 1
            if self._readers == 0:
                self._no_readers.set()

    @asynccontextmanager
    async def write(self, *, exclude_readers: bool) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        async with self._writer:
            if not exclude_readers:
                yield
                return
            self._bundle_open.clear()
            try:
                await self._no_readers.wait()
                yield
            finally:
                self._bundle_open.set()
