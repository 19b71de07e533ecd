"""The writer gate binds every process on one data dir, through file locks there.

A helper process takes the gate as a CLI command would; the real server must wait for it where
the gate says (a bundle stops reads and writes, a write stops writes), keep serving everything
else meanwhile, and go on as soon as the helper lets go. In-process cases check what flock makes
tricky: one process's readers share one lock, a bundle never waits on its own process, and a
reader given up while it waits leaves no lock behind.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fhir_server.storage.gate import Gate
from tests.api.test_crud import patient
from tests.server_process import ServerProcess

# Long enough that an ungated request would have answered; the wait is only ever this long.
STILL_WAITING = 1.0
FHIR = {"Content-Type": "application/fhir+json"}


@contextmanager
def held(data_dir: Path, kind: str) -> Iterator[subprocess.Popen[str]]:
    """The gate held by another process until the block ends."""
    holder = subprocess.Popen([sys.executable, "-m", "tests.store.gate_holder", str(data_dir), kind],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.stdin is not None:
            holder.stdin.write("\n")
            holder.stdin.close()
        holder.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("gate") / "data").start()
    yield process
    process.stop()


def in_background(pool: ThreadPoolExecutor, server: ServerProcess, method: str, url: str,
                  **kwargs: object) -> Future[httpx.Response]:
    return pool.submit(server.request, method, url, timeout=30, **kwargs)


def test_a_bundle_in_another_process_holds_reads_and_writes_until_it_commits(server: ServerProcess, unique: str) -> None:
    created = server.post(f"{server.base_url}/Patient", json=patient(unique), headers=FHIR).json()
    with ThreadPoolExecutor(2) as pool:
        with held(server.data_dir, "bundle"):
            read = in_background(pool, server, "GET", f"{server.base_url}/Patient/{created['id']}")
            write = in_background(pool, server, "POST", f"{server.base_url}/Patient", json=patient(unique + "b"), headers=FHIR)
            time.sleep(STILL_WAITING)
            assert not read.done() and not write.done(), "the server did not wait for the other process's bundle"
            # Waiting requests do not block the event loop.
            assert server.get(f"{server.base_url}/metadata", timeout=5).status_code == 200
        assert read.result(timeout=30).status_code == 200
        assert write.result(timeout=30).status_code == 201


def test_a_write_in_another_process_holds_writes_but_not_reads(server: ServerProcess, unique: str) -> None:
    created = server.post(f"{server.base_url}/Patient", json=patient(unique), headers=FHIR).json()
    with ThreadPoolExecutor(1) as pool:
        with held(server.data_dir, "write"):
            write = in_background(pool, server, "PUT", f"{server.base_url}/Patient/{created['id']}",
                                  json={**created, "gender": "female"}, headers=FHIR)
            time.sleep(STILL_WAITING)
            assert not write.done(), "the server did not wait for the other process's write"
            read = server.get(f"{server.base_url}/Patient/{created['id']}", timeout=5)
            assert read.status_code == 200 and "gender" not in read.json()
        assert write.result(timeout=30).status_code == 200
    assert server.get(f"{server.base_url}/Patient/{created['id']}").json()["gender"] == "female"


def test_readers_of_one_process_share_the_lock_and_its_bundle_waits_only_for_them(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        gate = Gate(enabled=True, lock_dir=tmp_path)
        events: list[str] = []
        readers_in = asyncio.Event()

        async def reader(i: int) -> None:
            async with gate.read():
                if i == 9:
                    readers_in.set()
                await asyncio.sleep(0.05)
            events.append("read")

        async def bundle() -> None:
            await readers_in.wait()
            async with gate.write(exclude_readers=True):
                events.append("bundle")

        async def late_reader() -> None:
            await readers_in.wait()
            await asyncio.sleep(0.01)
            async with gate.read():
                events.append("late read")

        await asyncio.wait_for(asyncio.gather(*(reader(i) for i in range(10)), bundle(), late_reader()), 10)
        return events

    # The bundle waits for the ten readers in, and the reader that came after it waits for it.
    assert asyncio.run(scenario()) == ["read"] * 10 + ["bundle", "late read"]


def test_a_reader_given_up_while_waiting_leaves_no_lock_behind(tmp_path: Path) -> None:
    async def scenario() -> None:
        gate = Gate(enabled=True, lock_dir=tmp_path)

        async def read() -> None:
            async with gate.read():
                pass

        with held(tmp_path, "bundle") as holder:
            waiting = asyncio.create_task(read())
            await asyncio.sleep(0.2)
            assert not waiting.done()
            waiting.cancel()
        assert holder.returncode == 0
        # The abandoned wait took the shared lock when the holder let go; it must have given it back.
        async with asyncio.timeout(10):
            async with gate.write(exclude_readers=True):
                pass

    asyncio.run(scenario())
