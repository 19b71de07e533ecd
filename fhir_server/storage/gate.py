"""Isolation for stores whose transactions do not isolate (the embedded store).

On a MongoDB replica set, multi-document transactions give snapshot isolation and this gate is
open. The embedded store rolls back an aborted transaction but lets others see writes before
commit, and it serialises writers on one SQLite file anyway. So every write holds the writer
lock (no two store transactions interleave), and a multi-resource transaction additionally
excludes readers until it commits, so nobody reads half of it.

In one process the gate is asyncio locks. Every process that uses the same data dir (the server,
a second server joining its store, CLI commands that write) must also agree, so with a lock dir
each side is doubled by an OS file lock (flock) there:

- `gate-writer.lock`: exclusive for every write, across processes;
- `gate-readers.lock`: shared while this process has readers, exclusive for a multi-resource
  commit.

flock belongs to an open file description, not to a task: the readers of one process share one
shared lock (counted), and every wait for a contended lock opens its own description, so a wait
abandoned by a cancelled task never stands in for another's hold. Writers and the readers' exclusion use separate
files, so a bundle holding the writer lock never waits on a lock it holds itself.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

WRITER_LOCK = "gate-writer.lock"
READERS_LOCK = "gate-readers.lock"


async def _flock(path: Path, operation: int) -> int:
    """Open `path` and lock it; the open descriptor holds the lock until it is closed.

    Uncontended, the lock is taken at once; contended, a thread waits for it so the event loop
    goes on serving.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        pass
    except BaseException:
        os.close(fd)
        raise
    locked = _wait_in_thread(fd, operation)
    try:
        await locked
    except asyncio.CancelledError:
        # flock returned before the cancellation came through: the lock is taken and unused.
        if locked.done() and not locked.cancelled() and locked.exception() is None:
            os.close(fd)
        raise
    return fd


def _wait_in_thread(fd: int, operation: int) -> asyncio.Future[None]:
    """flock(fd, operation) in a daemon thread, so a wait on another process never holds up the
    process's exit. If the waiter has given up by the time flock returns, the descriptor is closed,
    which gives back the lock."""
    loop = asyncio.get_running_loop()
    locked: asyncio.Future[None] = loop.create_future()

    def settle(error: OSError | None) -> None:
        if locked.cancelled():
            os.close(fd)
        elif error is not None:
            os.close(fd)
            locked.set_exception(error)
        else:
            locked.set_result(None)

    def wait() -> None:
        error: OSError | None = None
        try:
            fcntl.flock(fd, operation)
        except OSError as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:
            os.close(fd)  # The loop is closed: nobody waits any more.

    threading.Thread(target=wait, name="gate-flock", daemon=True).start()
    return locked


class _FileLocks:
    """The cross-process half of the gate: flock on two files in the data dir."""

    def __init__(self, lock_dir: Path) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.writer = lock_dir / WRITER_LOCK
        self.readers = lock_dir / READERS_LOCK
        # Kept open for the uncontended shared lock: opening the file costs twice the flock calls
        # and readers come one by one as often as together. Only this thread ever locks it.
        self._readers_fd = os.open(self.readers, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._shared_fd: int | None = None
        self._sharing = 0
        self._sharing_change = asyncio.Lock()

    async def share(self) -> None:
        async with self._sharing_change:
            if self._sharing == 0:
                try:
                    fcntl.flock(self._readers_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    self._shared_fd = self._readers_fd
                except BlockingIOError:
                    # A descriptor of its own, which a wait given up on can close safely.
                    self._shared_fd = await _flock(self.readers, fcntl.LOCK_SH)
            self._sharing += 1

    def unshare(self) -> None:
        self._sharing -= 1
        if self._sharing == 0 and self._shared_fd is not None:
            fd, self._shared_fd = self._shared_fd, None
            if fd == self._readers_fd:
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                os.close(fd)

    @asynccontextmanager
    async def exclusive(self, path: Path) -> AsyncIterator[None]:
        fd = await _flock(path, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)


class Gate:
    def __init__(self, enabled: bool, lock_dir: Path | None = None) -> None:
        self.enabled = enabled
        self._files = _FileLocks(lock_dir) if enabled and lock_dir is not None else None
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
            if self._files is None:
                yield
                return
            await self._files.share()
            try:
                yield
            finally:
                self._files.unshare()
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
            if self._files is None:
                async with self._exclude_readers(exclude_readers):
                    yield
                return
            async with self._files.exclusive(self._files.writer), self._exclude_readers(exclude_readers):
                yield

    @asynccontextmanager
    async def _exclude_readers(self, exclude: bool) -> AsyncIterator[None]:
        if not exclude:
            yield
            return
        self._bundle_open.clear()
        try:
            await self._no_readers.wait()
            if self._files is None:
                yield
                return
            # This process's readers are out, so its shared lock is released: only other
            # processes' readers can hold this one back.
            async with self._files.exclusive(self._files.readers):
                yield
        finally:
            self._bundle_open.set()
