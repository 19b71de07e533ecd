"""A Binary's bytes are written as a writer of the store, never into another writer's transaction.

The embedded store runs every session on one SQLite connection: bytes written while another
transaction is open land in it (and vanish when it aborts), and a GridFS operation there is
refused (the Binary create answered 500). Here the test plays another writer of the data dir, as a
CLI command is: it takes the writer gate's file lock, opens a store transaction, and aborts it
while a Binary is being created.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from fhir_server.storage.database import JOB_MARKS
from fhir_server.storage.gate import WRITER_LOCK
from tests.server_process import ServerProcess, dedicated_server

GRIDFS_THRESHOLD = 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = dedicated_server(tmp_path_factory.mktemp("blobs") / "data",
                               {"FHIR_GRIDFS_THRESHOLD": str(GRIDFS_THRESHOLD)}).start()
    yield process
    process.stop()


@pytest.mark.parametrize("size", [GRIDFS_THRESHOLD // 2, GRIDFS_THRESHOLD * 4], ids=["document", "gridfs"])
def test_a_binary_created_while_another_writer_aborts_keeps_its_bytes(server: ServerProcess, size: int) -> None:
    payload = os.urandom(size)
    answers: list[httpx.Response] = []
    store: MongoClient[dict] = MongoClient((server.data_dir / "embedded-store.url").read_text().strip())
    lock = os.open(server.data_dir / WRITER_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with store.start_session() as session:
            session.start_transaction()
            store["fhir"][JOB_MARKS].insert_one({"_id": f"other-writer-{uuid.uuid4()}"}, session=session)
            creating = threading.Thread(target=lambda: answers.append(server.post(
                f"{server.base_url}/Binary", content=payload, headers={"Content-Type": "application/octet-stream"},
                timeout=60)))
            creating.start()
            time.sleep(1.5)  # the create reaches its bytes' write meanwhile
            session.abort_transaction()
        fcntl.flock(lock, fcntl.LOCK_UN)
        creating.join(60)
    finally:
        os.close(lock)
        store.close()
    assert answers and answers[0].status_code == 201, answers[0].text if answers else "no answer"
    read = server.get(f"{server.base_url}/Binary/{answers[0].json()['id']}", headers={"Accept": "application/octet-stream"})
    assert read.status_code == 200 and read.content == payload
