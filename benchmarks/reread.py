"""`python -m benchmarks.reread`: the same documents read again and again (issue 18), the server's and
the store's CPU per read.

A read of a resource the process has read before uses its remembered route (fhir_server.storage
.routing); benchmarks.run draws its reads at random over the whole data set and so mostly reads
each document once. This loads `--documents` through the API, waits for the outbox to drain, reads
`--over` of the DocumentReferences once (wrk, 3 s), then `--rounds` wrk runs of `--seconds` over the
same ones, and prints one JSON line per run. To compare two commits, run it in an export of each
(`git archive COMMIT | tar -x -C DIR`, then `cd DIR && PYTHONPATH=. python -m benchmarks.reread`)
in turns: on a shared machine only turns taken back to back compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
from pymongo import MongoClient

from benchmarks import datagen
from benchmarks.load import load
from benchmarks.server import Server
from benchmarks.wrk import CONNECTIONS, ensure_wrk, run
from fhir_server.storage.database import OUTBOX

WARM_UP_SECONDS = 3


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reread", description=__doc__)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--over", type=int, default=200, help="DocumentReferences read again and again")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args(argv)
    binary = ensure_wrk()
    scratch = Path(tempfile.mkdtemp(prefix="fhir-reread-"))
    server = Server(scratch / "data").start()
    try:
        loaded = asyncio.run(load(server.base_url, datagen.bundles(datagen.Plan.for_scale(args.documents)), 4,
                                  lambda _: None, server.headers))
        with MongoClient(server.store_url()) as client:
            while client[server.database][OUTBOX].count_documents({}):
                time.sleep(1)
        paths = scratch / "paths"
        paths.write_text("".join(f"/fhir/DocumentReference/{i}\n" for i in loaded.ids["DocumentReference"][:args.over]))
        front, store = server.front(), server.store()
        run(binary, server.root_url, paths, server.token, args.connections, WARM_UP_SECONDS)
        for _ in range(args.rounds):
            before = _cpu(front), _cpu(store)
            figures, _ = run(binary, server.root_url, paths, server.token, args.connections, args.seconds)
            reads = max(figures["requests"], 1)
            print(json.dumps({"reads": figures["requests"], "per_s": round(reads / (figures["duration_us"] / 1e6), 1),
                              "server_cpu_ms": round((_cpu(front) - before[0]) / reads * 1000, 3),
                              "store_cpu_ms": round((_cpu(store) - before[1]) / reads * 1000, 3),
                              "errors": sum(figures["errors"].values())}), flush=True)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
