"""A process that dies in a store transaction leaves nothing of it behind.

The embedded store keeps a transaction open when its client dies, shows its writes to everyone,
and makes them durable with the next commit (pinned in test_embedded_limits.py): a CLI command
killed half-way through a batch would leave half of it in the record. The gate marks every open
transaction in the writer lock file; the next reader or writer that finds a mark nobody holds ends
that session first, which rolls the transaction back (storage/gate.py).

A helper process opens a transaction on the server's store as a CLI command would, then is killed
in it or lets it commit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from fhir_server.storage.database import Database
from fhir_server.storage.embedded import EmbeddedStore
from fhir_server.storage.gate import WRITER_LOCK
from tests.api.test_crud import patient
from tests.operator.test_observability import sample, scrape
from tests.server_process import ServerProcess

SCRATCH = "abandoned_transactions"
FHIR = {"Content-Type": "application/fhir+json"}


def no_open_transaction(server: ServerProcess, within: float = 10.0) -> bool:
    """No transaction is marked open, once the server's background work (the outbox dispatcher,
    lease renewals: transactions of a few milliseconds) lets the mark be seen blank."""
    deadline = time.monotonic() + within
    while (server.data_dir / WRITER_LOCK).read_bytes().strip():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def store_url(server: ServerProcess) -> str:
    return EmbeddedStore(server.data_dir).url_file.read_text(encoding="ascii").strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("abandoned") / "data").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def database_name(server: ServerProcess) -> str:
    return server.env.get("FHIR_DATABASE") or os.environ.get("FHIR_DATABASE", "fhir")


@pytest.fixture(scope="module")
def scratch(server: ServerProcess, database_name: str) -> Iterator[Any]:
    """A collection of the server's store, seen by a plain client that no gate binds."""
    with MongoClient(store_url(server), serverSelectionTimeoutMS=5000) as client:
        # Created outside any transaction: one created inside a rolled-back one is lost.
        client[database_name].create_collection(SCRATCH)
        yield client[database_name][SCRATCH]


def open_transaction(server: ServerProcess, database_name: str, document_id: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-m", "tests.store.transaction_holder", str(server.data_dir),
                               database_name, SCRATCH, document_id],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    return holder


def killed_in_a_transaction(server: ServerProcess, database_name: str, scratch: Any, document_id: str) -> None:
    holder = open_transaction(server, database_name, document_id)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    # What the store does with it: the dead client's write is there for anyone to see.
    assert scratch.find_one({"_id": document_id}) == {"_id": document_id}


def test_the_server_rolls_back_a_killed_writers_transaction_before_it_reads(
        server: ServerProcess, database_name: str, scratch: Any, unique: str) -> None:
    before = sample(scrape(server), "fhir_store_abandoned_transactions_total")
    killed_in_a_transaction(server, database_name, scratch, "read-" + unique)
    assert server.get(f"{server.base_url}/Patient", params={"_count": 1}).status_code == 200
    assert scratch.find_one({"_id": "read-" + unique}) is None
    # Nor does the server's next commit make it durable.
    assert server.post(f"{server.base_url}/Patient", json=patient(unique), headers=FHIR).status_code == 201
    assert scratch.find_one({"_id": "read-" + unique}) is None
    assert sample(scrape(server), "fhir_store_abandoned_transactions_total") - before == 1
    assert no_open_transaction(server)


def test_the_next_writer_rolls_back_a_killed_writers_transaction(
        server: ServerProcess, database_name: str, scratch: Any, unique: str) -> None:
    killed_in_a_transaction(server, database_name, scratch, "write-" + unique)

    async def write() -> None:
        # Another process that only writes: no reader of its own comes first.
        database = Database(store_url(server), database_name, data_dir=server.data_dir)
        await database.connect()
        try:
            async with database.gate.write(exclude_readers=False):
                assert scratch.find_one({"_id": "write-" + unique}) is None
        finally:
            await database.close()

    asyncio.run(write())


def test_a_live_writers_transaction_is_its_own(server: ServerProcess, database_name: str, scratch: Any,
                                                unique: str) -> None:
    holder = open_transaction(server, database_name, "live-" + unique)
    assert (server.data_dir / WRITER_LOCK).read_bytes().strip() != b""
    # The server reads meanwhile (the holder keeps readers in): the open transaction is not ended.
    assert server.get(f"{server.base_url}/Patient", params={"_count": 1}).status_code == 200
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("\n")
    holder.stdin.close()
    assert holder.stdout.readline().strip() == "committed"
    assert holder.wait(timeout=10) == 0
    assert scratch.find_one({"_id": "live-" + unique}) == {"_id": "live-" + unique}
    assert no_open_transaction(server)


def test_a_transaction_refused_half_way_is_ended_at_once(server: ServerProcess, unique: str) -> None:
    before = sample(scrape(server), "fhir_store_abandoned_transactions_total")
    created = server.post(f"{server.base_url}/Patient", json=patient(unique), headers=FHIR).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(unique + "b"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**created, "gender": "other"},
         "request": {"method": "PUT", "url": f"Patient/{created['id']}", "ifMatch": 'W/"9"'}}]}
    refused = server.post(server.base_url, json=bundle, headers=FHIR)
    assert refused.status_code in (409, 412), refused.text
    # Its abort reached the store: nothing is left to end, and nobody is told of an abandoned one.
    assert no_open_transaction(server)
    assert server.get(f"{server.base_url}/Patient", params={"_count": 1}).status_code == 200
    assert sample(scrape(server), "fhir_store_abandoned_transactions_total") == before
