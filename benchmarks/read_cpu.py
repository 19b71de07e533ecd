"""`python -m benchmarks.read_cpu`: server CPU per read (or vread), the server's app against the bare
route's, both called as ASGI applications in this one process by 16 concurrent tasks, the embedded
store in its own process (issue 18).

What it measures is this process's CPU time (`time.process_time`) over the reads: the server's work
apart from HTTP parsing (uvicorn's, the same for both), without a load generator or another
server on the same cores, so it holds on a busy machine where throughputs do not. Each app is
warmed up first; the server is settled as `serve` settles it (fhir_server.cli.settle_heap) unless
`--unsettled`. The bare route is benchmarks.bare_app, reading the same documents from the same
store, its own audit trail included; it is measured after the server, in the same process (settled
too: the comparison does not credit the server with the collector's tuning), while the server's app
is still running, so its background work (leases, dispatcher, registries read every second)
counts in both.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

from benchmarks import datagen
from benchmarks.bare_app import create_app as create_bare_app
from fhir_server.app import create_app
from fhir_server.cli import settle_heap
from fhir_server.config import Settings
from fhir_server.observability import logs
from fhir_server.storage.embedded import EmbeddedStore
from tests.server_process import TEST_ENV, free_port, server_token

CONCURRENCY = 16
WARM_UP = 100
PATIENTS = 5
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(app: App, port: int, method: str, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request through the app as uvicorn would hand it over: status and body."""
    headers = [(b"host", f"127.0.0.1:{port}".encode()), (b"authorization", f"Bearer {token}".encode()),
               (b"accept", b"application/fhir+json")]
    if body:
        headers.append((b"content-type", b"application/fhir+json"))
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", port), "state": {}}
    received = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the client stays until the answer
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def cpu_per_request(app: App, port: int, paths: list[str], token: str, reads: int) -> float:
    """Milliseconds of this process's CPU per request, `reads` requests by CONCURRENCY tasks."""
    async def client(first: int, count: int) -> None:
        for n in range(count):
            status, body = await call(app, port, "GET", paths[(first * 7 + n) % len(paths)], token)
            if status != 200:
                raise RuntimeError(f"{status}: {body[:300]!r}")

    await asyncio.gather(*(client(k, WARM_UP) for k in range(CONCURRENCY)))
    started = time.process_time()
    await asyncio.gather(*(client(k, reads // CONCURRENCY) for k in range(CONCURRENCY)))
    return 1000 * (time.process_time() - started) / (reads // CONCURRENCY * CONCURRENCY)


async def measure(data_dir: Path, reads: int, vread: bool, settle: bool) -> dict[str, float]:
    store = EmbeddedStore(data_dir.resolve())
    url = store.start()
    try:
        port = free_port()
        settings = Settings(port=port, data_dir=data_dir, mllp_port=None)
        # As `serve` logs: one access line per request, here into a file.
        with open(data_dir / "server.log", "w", encoding="utf-8") as log:
            logs.configure(settings.log_level, settings.log_format, log)
            app = create_app(settings, url)
            async with app.router.lifespan_context(app):
                token = server_token(data_dir, f"http://127.0.0.1:{port}/fhir")
                bundle = next(datagen.bundles(datagen.Plan(0, PATIENTS)))
                status, body = await call(app, port, "POST", "/fhir", token, orjson.dumps(bundle))
                if status != 200:
                    raise RuntimeError(f"loading: {status}: {body[:300]!r}")
                ids = [e["response"]["location"].split("/")[1] for e in orjson.loads(body)["entry"]
                       if e["response"]["location"].startswith("DocumentReference/")]
                suffix = "/_history/1" if vread else ""
                if settle:
                    settle_heap()
                server = await cpu_per_request(app, port, [f"/fhir/DocumentReference/{i}{suffix}" for i in ids],
                                               token, reads)
                bare_app = create_bare_app(url, settings.database)
                async with bare_app.router.lifespan_context(bare_app):
                    # The bare app has one route, for reads: a vread is compared with it too, as `make bench` does.
                    bare = await cpu_per_request(bare_app, port, [f"/DocumentReference/{i}" for i in ids], token, reads)
        return {"server": server, "bare": bare}
    finally:
        store.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.read_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=4000, help="requests measured per app (default 4000)")
    parser.add_argument("--vread", action="store_true", help="the server's vread instead of its read")
    parser.add_argument("--unsettled", action="store_true", help="leave the garbage collector as start-up left it")
    parser.add_argument("--runs", type=int, default=1, help="measure this many times, each with a store of its own")
    args = parser.parse_args()
    os.environ.update(TEST_ENV)
    for run in range(args.runs):
        data_dir = Path(tempfile.mkdtemp(prefix="read-cpu-"))
        try:
            figures = uvloop.run(measure(data_dir, args.reads, args.vread, not args.unsettled))
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
            gc.unfreeze()
        kind = "vread" if args.vread else "read"
        print(f"run {run + 1}: server {kind} {figures['server']:.3f} ms CPU, bare route {figures['bare']:.3f} ms "
              f"({figures['bare'] / figures['server']:.0%} of the server's cost)", flush=True)


if __name__ == "__main__":
    main()
