"""A crash in the middle of HL7 v2 intake, then an immediate restart, ten times in a row.

The server and its embedded store are killed together (SIGKILL to the process group, as the OOM
killer or a container stop would) while MLLP messages arrive, and started again at once on the
same data dir and ports, as a supervisor would. Each restart must serve, and every message that
was acknowledged AA before the kill must be readable after it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import httpx

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import frame, read_frame
from tests.hl7v2.conftest import fixture
from tests.server_process import ServerProcess

# The series is ten rounds, run by `make test-all`; `make test` keeps two, which still catch a
# restart that fails after a crash, within its time budget (the project decisions on time and budgets).
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "2"))
# The PID-3 identifier the sending facility gives a patient (adt_a28.hl7's assigning authority).
IPP_SYSTEM = "urn:oid:1.2.250.1.999.1.1.1"


def admission(ipp: str) -> bytes:
    """ADT^A28 for a patient of our own, with a control id of its own."""
    return fixture("adt_a28.hl7").replace(b"IPP0099", ipp.encode()).replace(b"|ADT-A28|", f"|{ipp}|".encode())


async def ingest_until_killed(server: ServerProcess, prefix: str, kill_after: float) -> list[str]:
    """Send admissions one after the other, kill the server's group `kill_after` seconds after the
    first ACK, and return the identifiers of the patients whose message was acknowledged."""
    assert server.process is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.mllp_port)
    acknowledged: list[str] = []
    first_ack = asyncio.Event()

    async def pump() -> None:
        try:
            for i in range(100_000):
                ipp = f"{prefix}-{i}"
                writer.write(frame(admission(ipp)))
                await writer.drain()
                answer = await read_frame(reader)
                if answer is None:
                    return
                ack = er7.parse(answer)
                assert (ack.text("MSA-1"), ack.text("MSA-2")) == ("AA", ipp), answer
                acknowledged.append(ipp)
                first_ack.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            return

    pumping = asyncio.create_task(pump())
    await asyncio.wait_for(first_ack.wait(), 30)
    await asyncio.sleep(kill_after)
    assert not pumping.done(), "intake stopped before the crash"
    os.killpg(server.process.pid, signal.SIGKILL)
    await asyncio.wait_for(pumping, 30)
    writer.close()
    return acknowledged


def process_state(pid: int) -> str | None:
    """The state letter in /proc/<pid>/stat (Z: zombie), None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def unreadable(server: ServerProcess, ipps: list[str]) -> list[str]:
    """Those of `ipps` for which the server has no Patient."""
    found: set[str] = set()
    with server.client(server.base_url, timeout=60) as client:
        for start in range(0, len(ipps), 40):
            wanted = ",".join(f"{IPP_SYSTEM}|{ipp}" for ipp in ipps[start:start + 40])
            bundle = client.get("Patient", params={"identifier": wanted, "_count": "100"}).json()
            found |= {i["value"] for e in bundle.get("entry", []) for i in e["resource"].get("identifier", [])}
    return [ipp for ipp in ipps if ipp not in found]


def test_restart_at_once_after_kill_9_during_mllp_intake_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", own_group=True).start()
    chance = random.Random(10)
    acknowledged: list[str] = []
    restarts: list[float] = []
    try:
        for round_ in range(ROUNDS):
            acknowledged += asyncio.run(ingest_until_killed(server, f"CRASH{round_}", chance.uniform(0.05, 0.4)))
            assert server.process is not None
            server.process.wait()
            server.process = None
            killed = time.monotonic()
            # At once: the killed store is still a zombie (or exiting) while the new server starts.
            server.start(timeout=30)
            restarts.append(time.monotonic() - killed)
            assert unreadable(server, acknowledged) == [], f"round {round_}: acknowledged messages lost"
    finally:
        server.stop()
    assert len(acknowledged) >= ROUNDS
    print(f"restart after kill -9: median {sorted(restarts)[len(restarts) // 2]:.2f}s, max {max(restarts):.2f}s, "
          f"{len(acknowledged)} acknowledged messages kept")


def test_restart_stops_a_store_its_killed_server_left_running(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    assert server.process is not None
    store = int((tmp_path / "data" / "embedded-store.pid").read_text())
    # A store that does not go with its server (here: stopped, so it cannot act on the SIGTERM
    # its server's death sends it), as when only the server's own pid is killed.
    os.kill(store, signal.SIGSTOP)
    try:
        server.process.kill()
        server.process.wait()
        server.process = None
        server.start(timeout=30)
        try:
            assert server.get(f"{server.base_url}/Patient").status_code == 200
            assert process_state(store) in ("Z", None), "the orphan store still runs"
            assert "outlived its server; stopping it" in server.log_path.read_text()
        finally:
            server.stop()
    finally:
        try:
            os.kill(store, signal.SIGKILL)
        except ProcessLookupError:
            pass
