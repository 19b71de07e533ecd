"""Embedded stores started once and lent to the forked test processes of `make mutate`.

mutmut forks a fresh test process per mutant; each would otherwise start its own store (0.6 s
of the 2.5 s a killed mutant costs). With FHIR_TEST_STORE_POOL=N, the first test session of a
process tree starts N stores; every session then borrows a free one (an OS file lock says which)
with a database of its own, dropped when the session ends, so no mutant sees another's data.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymongo import MongoClient

from fhir_server.storage.embedded import EmbeddedStore

SIZE = int(os.environ.get("FHIR_TEST_STORE_POOL") or 0)
_stores: list[EmbeddedStore] = []


def _start() -> list[EmbeddedStore]:
    if not _stores:
        root = Path(tempfile.mkdtemp(prefix="fhir-store-pool-"))
        _stores.extend(EmbeddedStore(root / f"slot-{n}") for n in range(SIZE))
        for store in _stores:
            store.start()
        atexit.register(_stop, os.getpid(), root)
    return _stores


def _stop(owner: int, root: Path) -> None:
    if os.getpid() != owner:
        return  # a forked test process: the stores belong to the process that started them
    for store in _stores:
        store.stop()
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def borrowed_store() -> Iterator[tuple[str, str, Path]]:
    """The URL of a pooled store nobody else holds, a new database name on it, and its data dir:
    the server that borrows it takes that data dir, as only a server of its data dir may use it."""
    while True:
        for store in _start():
            lock = os.open(store.data_dir / "borrowed.lock", os.O_CREAT | os.O_RDWR)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue
            database = f"t{uuid.uuid4().hex[:16]}"
            try:
                yield store.url, database, store.data_dir
            finally:
                client: MongoClient[dict] = MongoClient(store.url, serverSelectionTimeoutMS=2000)
                try:
                    client.drop_database(database)
                finally:
                    client.close()
                    os.close(lock)
            return
        time.sleep(0.05)
