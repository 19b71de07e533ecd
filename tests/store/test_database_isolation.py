"""Logical databases of the embedded store: shared in single-file mode, apart in --data-dir mode.

The server starts the store with --data-dir (one SQLite file per database); in --db mode every
database name maps to the same tables and dropping one empties all. Pinned so that a change
either way is noticed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from fhir_server.storage.embedded import EmbeddedStore
from tests.server_process import free_port


def _two_databases(url: str) -> tuple[int, int]:
    client: MongoClient[dict] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.one.things.insert_one({"_id": "a"})
        client.two.things.insert_one({"_id": "b"})
        client.drop_database("two")
        return client.one.things.count_documents({}), client.two.things.count_documents({})
    finally:
        client.close()


@pytest.fixture
def single_file_store(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-c", "import sys; from nx_27017.nx_27017 import main; sys.exit(main())",
               "--db", str(tmp_path / "single.db"), "--port", str(port), "--log-file", str(tmp_path / "log"),
               "--pid-file", str(tmp_path / "pid")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        for _ in range(200):
            try:
                MongoClient(url, serverSelectionTimeoutMS=200).admin.command("ping")
                break
            except PyMongoError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_single_file_mode_shares_tables_across_databases(single_file_store: str) -> None:
    kept, dropped = _two_databases(single_file_store)
    assert (kept, dropped) == (0, 0), "the embedded store now keeps databases apart in --db mode"


def test_data_dir_mode_keeps_databases_apart(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    try:
        assert _two_databases(store.start()) == (1, 0)
    finally:
        store.stop()
