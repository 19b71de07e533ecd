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

A process that dies holding the writer lock gives the lock back, but not its store transaction:
the embedded store keeps a transaction open when its client's connection ends, shows its writes
to everyone, and makes them durable with the next transaction's commit (tests/store/
test_embedded_limits.py). So while a store transaction is open, its session id is written in the
writer lock file (`transaction`), and cleared once it committed. A mark found with the writer lock
free names a transaction nobody will end: the next writer, or the next process to start reading,
ends its session first, which rolls it back (`end_session`).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import string
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

WRITER_LOCK = "gate-writer.lock"
READERS_LOCK = "gate-readers.lock"
# A store session id as the mark holds it: 16 bytes in hex, always this long, so a mark written
# over another leaves no tail of it. It is cleared by writing blanks over it (a quarter of the
# cost of truncating the file, once per transaction).
SESSION_ID_LENGTH = 32
CLEARED = b" " * SESSION_ID_LENGTH

EndSession = Callable[[str], Awaitable[None]]


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

    def __init__(self, lock_dir: Path, end_session: EndSession | None) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.writer = lock_dir / WRITER_LOCK
        self.readers = lock_dir / READERS_LOCK
        self.end_session = end_session
        # The descriptor holding the writer lock while this process writes: where the mark goes.
        self.writer_fd: int | None = None
        # Kept open to look at the mark when readers start, and to take the writer lock for a moment
        # without waiting when it names an abandoned transaction.
        self._writer_probe = os.open(self.writer, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
                try:
                    await self._readers_start()
                except BaseException:
                    self._release_shared()
                    raise
            self._sharing += 1

    async def _readers_start(self) -> None:
        """Readers of this process start: a transaction abandoned since, whose writes they would
        see, is rolled back first. A mark beside a held writer lock is that writer's own."""
        if not os.pread(self._writer_probe, SESSION_ID_LENGTH, 0).strip():
            return
        try:
            fcntl.flock(self._writer_probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        try:
            await self.end_abandoned(self._writer_probe)
        finally:
            fcntl.flock(self._writer_probe, fcntl.LOCK_UN)

    async def end_abandoned(self, fd: int) -> None:
        """With the writer lock held through `fd`: the transaction its mark names, if any, ended."""
        mark = os.pread(fd, SESSION_ID_LENGTH + 1, 0).strip()
        if not mark or self.end_session is None:
            return
        session_id = mark.decode("ascii", "replace")
        # Only this server writes the mark; anything else in the file names no session to end.
        if len(session_id) == SESSION_ID_LENGTH and all(c in string.hexdigits for c in session_id):
            await self.end_session(session_id)
        os.pwrite(fd, CLEARED, 0)

    def unshare(self) -> None:
        self._sharing -= 1
        if self._sharing == 0:
            self._release_shared()

    def _release_shared(self) -> None:
        if self._shared_fd is not None:
            fd, self._shared_fd = self._shared_fd, None
            if fd == self._readers_fd:
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                os.close(fd)

    @asynccontextmanager
    async def exclusive(self, path: Path) -> AsyncIterator[int]:
        fd = await _flock(path, fcntl.LOCK_EX)
        try:
            yield fd
        finally:
            os.close(fd)


class OpenTransaction:
    """A store transaction marked open in the writer lock file."""

    def __init__(self) -> None:
        self.kept = False

    def keep(self) -> None:
        """It may still be open in the store after the block (its abort may not have reached it):
        the mark stays, and the next writer or reader ends it."""
        self.kept = True


class Gate:
    def __init__(self, enabled: bool, lock_dir: Path | None = None, end_session: EndSession | None = None) -> None:
        """`end_session(id)` ends a store session, rolling back its open transaction: how a
        transaction abandoned by a dead process is ended."""
        self.enabled = enabled
        self._files = _FileLocks(lock_dir, end_session) if enabled and lock_dir is not None else None
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
            async with self._files.exclusive(self._files.writer) as fd:
                await self._files.end_abandoned(fd)
                self._files.writer_fd = fd
                try:
                    async with self._exclude_readers(exclude_readers):
                        yield
                finally:
                    self._files.writer_fd = None

    @contextmanager
    def transaction(self, session_id: str) -> Iterator[OpenTransaction]:
        """Inside `write`: the store transaction of session `session_id` is open for the block, and
        ended (committed or aborted) when it exits, unless it calls `keep()`."""
        opened = OpenTransaction()
        fd = self._files.writer_fd if self._files is not None else None
        if fd is None:
            yield opened
            return
        os.pwrite(fd, session_id.encode("ascii"), 0)
        try:
            yield opened
        finally:
            if not opened.kept:
                os.pwrite(fd, CLEARED, 0)

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
