"""`python -m benchmarks.workers`: practitioner reads served by 1, 2 and 4 server processes (issue 25).

A data set is loaded once through the server (datagen's patients with their documents, Binaries,
appointments, messages and consents, plus vital signs and lab results), then for each worker count
`fhir-server serve --workers N` is started on it (embedded store unless MONGODB_URL is set), warmed
up, and wrk (`benchmarks/reads.lua`) sends authenticated GETs, the platform's token on each, over the
mix practitioner software sends (`MIX`) at each `--connections` for `--duration` seconds. Per run:
requests/s, p50/p99 latency, and the CPU time spent meanwhile by the server processes (parent and
workers), by the store process and by wrk, each per request. Worker counts are taken in turns,
`--rounds` times (order reversed every other round), and the median of the rounds is reported, so
the shared machine's other work weighs on every count alike; the load average is kept with each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
from pymongo import MongoClient

from benchmarks import datagen
from benchmarks.load import load
from benchmarks.server import Server
from benchmarks.wrk import ensure_wrk
from benchmarks.wrk import run as run_wrk
from fhir_server.storage.database import OUTBOX

ROOT = Path(__file__).resolve().parent.parent
WORKER_COUNTS = (1, 2, 4)
CONNECTIONS = (8, 64)
# The target: two processes serve at least this share of one's throughput on two cores.
MIN_RATIO = 0.95
# What practitioner software reads, out of 10 requests: a resource by id (a document's metadata, the
# patient, one result), the patient's results, the patient's current documents.
MIX: tuple[tuple[str, int], ...] = (
    ("DocumentReference/{document}", 2),
    ("Patient/{patient}", 1),
    ("Observation/{observation}", 1),
    ("Observation?subject=Patient/{patient}&_count=20", 3),
    ("DocumentReference?patient=Patient/{patient}&status=current&_count=20", 3),
)
PATHS_IN_FILE = 20_000
# Loading leaves events in the outbox that the dispatcher works through for minutes (about 200/s on
# the embedded store); reads measured meanwhile would share the cores with that work.
SETTLE_TIMEOUT = 1200.0


@dataclass
class Run:
    """One wrk run against one server."""

    workers: int
    connections: int
    round: int
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    server_processes: int
    server_cpu_ms_per_request: float
    store_cpu_ms_per_request: float | None
    wrk_cpu_ms_per_request: float
    load_average: tuple[float, float, float]


def bundles(patients: int, observations: int, entries_per_bundle: int = 100) -> Iterator[dict[str, Any]]:
    """Whole patients (datagen's entries plus their observations) packed into transaction bundles."""
    def entries(n: int) -> list[dict[str, Any]]:
        own = datagen.patient_entries(n, 512)
        patient_url = own[0]["fullUrl"]
        return own + [{"resource": datagen.observation(patient_url, n, k), "request": {"method": "POST", "url": "Observation"}}
                      for k in range(observations)]

    batch: list[dict[str, Any]] = []
    for n in range(patients):
        batch += entries(n)
        if len(batch) >= entries_per_bundle:
            yield {"resourceType": "Bundle", "type": "transaction", "entry": batch}
            batch = []
    if batch:
        yield {"resourceType": "Bundle", "type": "transaction", "entry": batch}


def request_paths(ids: dict[str, list[str]], count: int, seed: int = 25) -> list[str]:
    """`count` request paths drawn with the weights of MIX over the loaded ids."""
    chooser = random.Random(seed)
    templates = [t for t, weight in MIX for _ in range(weight)]
    return ["/fhir/" + chooser.choice(templates).format(document=chooser.choice(ids["DocumentReference"]),
                                                         patient=chooser.choice(ids["Patient"]),
                                                         observation=chooser.choice(ids["Observation"]))
            for _ in range(count)]


def check_mix(server: Server, ids: dict[str, list[str]]) -> None:
    """Every kind of request answers 200 with something in it, or the rates would measure refusals."""
    sample = {"document": ids["DocumentReference"][0], "patient": ids["Patient"][0], "observation": ids["Observation"][0]}
    with server.client(headers={"Accept": "application/fhir+json"}, timeout=60) as client:
        for template, _ in MIX:
            path = template.format(**sample)
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"GET {path}: {response.status_code} {response.text[:300]}")
            body = response.json()
            if body["resourceType"] == "Bundle" and not body.get("entry"):
                raise SystemExit(f"GET {path}: an empty page; the searches would measure nothing")


def server_processes(server: Server) -> list[psutil.Process]:
    """The front process and every process under it but the store: parent and workers."""
    store = server.store()
    front = server.front()
    return [front, *(p for p in front.children(recursive=True) if store is None or p.pid != store.pid)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system time of the processes, their reaped children's included (/proc/<pid>/stat)."""
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total


def wrk(binary: str, server: Server, paths: Path, connections: int, seconds: int) -> tuple[dict[str, Any], float]:
    """One wrk run (two threads): the figures its script prints, and wrk's own CPU seconds."""
    return run_wrk(binary, server.root_url, paths, server.token, connections, seconds, threads=2)


def measure(binary: str, server: Server, paths: Path, workers: int, connections: int, seconds: int,
            round_: int) -> Run:
    processes = server_processes(server)
    store = server.store()
    server_before = cpu_seconds(processes)
    store_before = cpu_seconds([store]) if store else 0.0
    figures, wrk_cpu = wrk(binary, server, paths, connections, seconds)
    server_used = cpu_seconds(processes) - server_before
    store_used = cpu_seconds([store]) - store_before if store else None
    requests = figures["requests"]
    elapsed = figures["duration_us"] / 1e6
    latency = figures["latency_us"]
    per_request = (lambda used: round(used / requests * 1000, 3)) if requests else (lambda used: 0.0)
    return Run(workers, connections, round_, requests, round(elapsed, 2), round(requests / elapsed, 1),
               round(latency["p50"] / 1000, 2), round(latency["p90"] / 1000, 2), round(latency["p99"] / 1000, 2),
               round(latency["max"] / 1000, 2), figures["errors"], len(processes), per_request(server_used),
               per_request(store_used) if store_used is not None else None, per_request(wrk_cpu),
               tuple(round(x, 2) for x in os.getloadavg()))


def stop(server: Server) -> None:
    """Stop the server and make sure none of its processes outlives it (the next start shares the data dir)."""
    processes = [server.front(), *server.front().children(recursive=True)]
    server.stop()
    gone, alive = psutil.wait_procs(processes, timeout=15)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=5)
    # The embedded store's pid file is read by the next start: give its removal a moment.
    time.sleep(1.0)


def outbox_backlog(server: Server) -> int:
    """Events written but not yet dispatched."""
    with MongoClient(server.store_url()) as client:
        return client[server.database][OUTBOX].estimated_document_count()


def settle(server: Server) -> float:
    """Wait until the dispatcher has emptied the outbox; the seconds it took."""
    started = time.monotonic()
    left = outbox_backlog(server)
    while left > 0:
        if time.monotonic() - started > SETTLE_TIMEOUT:
            raise RuntimeError(f"{left} events still in the outbox after {SETTLE_TIMEOUT:.0f} s")
        print(f"\r  waiting for the outbox to drain: {left} events left ", end="", flush=True)
        time.sleep(2.0)
        if (left := outbox_backlog(server)) == 0:
            print()
    return time.monotonic() - started


def seed(data_dir: Path, patients: int, observations: int) -> tuple[dict[str, list[str]], dict[str, Any]]:
    server = Server(data_dir).start()
    try:
        loaded = asyncio.run(load(server.base_url, bundles(patients, observations), concurrency=4,
                                  headers=server.headers))
        check_mix(server, loaded.ids)
        drained = settle(server)
    finally:
        stop(server)
    return loaded.ids, {"patients": patients, "resources": loaded.resources, "seconds": round(loaded.seconds, 1),
                        "resources_per_s": round(loaded.resources / max(loaded.seconds, 1e-9), 1),
                        "outbox_drained_in_s": round(drained, 1),
                        "by_type": {t: len(v) for t, v in loaded.ids.items()}}


def summary(runs: list[Run]) -> list[dict[str, Any]]:
    """Medians over the rounds, per worker count and connections."""
    rows = []
    for workers in sorted({r.workers for r in runs}):
        for connections in sorted({r.connections for r in runs}):
            mine = [r for r in runs if r.workers == workers and r.connections == connections]
            if not mine:
                continue
            median = lambda name: round(statistics.median(getattr(r, name) for r in mine), 3)  # noqa: E731
            rows.append({"workers": workers, "connections": connections, "rounds": len(mine),
                         **{name: median(name) for name in ("requests_per_s", "p50_ms", "p99_ms",
                                                            "server_cpu_ms_per_request", "wrk_cpu_ms_per_request")},
                         "store_cpu_ms_per_request": None if mine[0].store_cpu_ms_per_request is None
                         else median("store_cpu_ms_per_request"),
                         "errors": sum(sum(r.errors.values()) for r in mine),
                         "load_average": [r.load_average[0] for r in mine]})
    return rows


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets: 2 workers >= 0.95x of one in throughput, and a lower p99 at the most connections."""
    by = {(r["workers"], r["connections"]): r for r in rows}
    most = max((r["connections"] for r in rows), default=0)
    out = []
    for connections in sorted({r["connections"] for r in rows}):
        one, two = by.get((1, connections)), by.get((2, connections))
        if not one or not two:
            continue
        ratio = round(two["requests_per_s"] / one["requests_per_s"], 3)
        out.append({"target": f"2 workers / 1, throughput at {connections} connections", "wanted": f">= {MIN_RATIO}",
                    "measured": ratio, "met": ratio >= MIN_RATIO})
        if connections == most:
            out.append({"target": f"p99 at {connections} connections, 2 workers vs 1", "wanted": "lower",
                        "measured": f"{two['p99_ms']} vs {one['p99_ms']} ms", "met": two["p99_ms"] < one["p99_ms"]})
    return out


def projection(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests/s one server core carries, from the server's own CPU per request (1 worker, the most
    connections: the server busiest, so its fixed costs weigh least). Not the store's: see docs/PERFORMANCE.md."""
    ones = [r for r in rows if r["workers"] == 1]
    if not ones:
        return {}
    row = max(ones, key=lambda r: r["connections"])
    server_ms = row["server_cpu_ms_per_request"]
    return {"connections": row["connections"], "server_cpu_ms_per_request": server_ms,
            "requests_per_s_per_server_core": round(1000 / server_ms) if server_ms else None,
            "embedded_store_cpu_ms_per_request": row["store_cpu_ms_per_request"]}


def table(rows: list[dict[str, Any]]) -> str:
    header = ["workers", "connections", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "store CPU ms/req",
              "wrk CPU ms/req", "errors", "load (1 min) per round"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        store = "-" if r["store_cpu_ms_per_request"] is None else f"{r['store_cpu_ms_per_request']:.2f}"
        lines.append(f"| {r['workers']} | {r['connections']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['server_cpu_ms_per_request']:.2f} | {store} | "
                     f"{r['wrk_cpu_ms_per_request']:.3f} | {r['errors']} | "
                     f"{', '.join(f'{x:.1f}' for x in r['load_average'])} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default=",".join(map(str, WORKER_COUNTS)), help="worker counts, comma-separated")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)), help="wrk connections, comma-separated")
    # wrk takes whole seconds.
    parser.add_argument("--duration", type=int, default=15, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of wrk at the most connections first")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--observations", type=int, default=20, help="observations per patient")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of the measured servers, for experiments (e.g. FHIR_BENCH_WITHOUT_AUDIT=1)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the loaded data here and reuse it on the next run with this option "
                             "(default: a temporary directory, removed at the end)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(x) for x in args.workers.split(",")]
    connections = [int(x) for x in args.connections.split(",")]
    server_env = dict(item.split("=", 1) for item in args.server_env)
    binary = ensure_wrk()
    started = datetime.now(timezone.utc)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="fhir-workers-") as scratch:
        data_dir = args.data_dir or Path(scratch) / "data"
        loaded = data_dir.with_name(data_dir.name + ".loaded.json")
        if args.data_dir is not None and loaded.exists():
            ids, seeded = json.loads(loaded.read_text(encoding="utf-8"))
            print(f"reusing {data_dir}: {seeded['resources']} resources", flush=True)
        else:
            print(f"loading {args.patients} patients ...", flush=True)
            ids, seeded = seed(data_dir, args.patients, args.observations)
            loaded.write_text(json.dumps([ids, seeded]), encoding="utf-8")
            print(f"  {seeded['resources']} resources in {seeded['seconds']} s", flush=True)
        paths = Path(scratch) / "paths.txt"
        paths.write_text("\n".join(request_paths(ids, PATHS_IN_FILE)) + "\n", encoding="utf-8")
        for round_ in range(args.rounds):
            for workers in (counts if round_ % 2 == 0 else counts[::-1]):
                server = Server(data_dir, args=["--workers", str(workers)], env=server_env).start()
                try:
                    settle(server)
                    wrk(binary, server, paths, max(connections), args.warmup)
                    for c in connections:
                        one = measure(binary, server, paths, workers, c, args.duration, round_)
                        runs.append(one)
                        print(f"  round {round_ + 1}: {workers} workers, {c:>3} connections: "
                              f"{one.requests_per_s:7.1f} req/s, p50 {one.p50_ms:6.1f} ms, p99 {one.p99_ms:6.1f} ms, "
                              f"CPU ms/req server {one.server_cpu_ms_per_request:.2f} "
                              f"store {one.store_cpu_ms_per_request} wrk {one.wrk_cpu_ms_per_request:.3f}, "
                              f"{one.server_processes} processes, errors {sum(one.errors.values())}, "
                              f"load {one.load_average[0]}", flush=True)
                finally:
                    stop(server)
    rows = summary(runs)
    return {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "machine": {"nproc": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "load_average_at_start": load_at_start,
                    "store": "MONGODB_URL" if os.environ.get("MONGODB_URL") else "embedded nx-27017",
                    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                             cwd=ROOT).stdout.strip()},
        "settings": {"workers": counts, "connections": connections, "duration": args.duration, "warmup": args.warmup,
                     "rounds": args.rounds, "mix": dict(MIX), "server_env": server_env},
        "data": seeded,
        "runs": [asdict(r) for r in runs],
        "summary": rows,
        "targets": verdicts(rows),
        "projection": projection(rows),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    figures = run(args)
    print()
    print(table(figures["summary"]))
    for target in figures["targets"]:
        print(f"- {target['target']}: {target['measured']} (wanted {target['wanted']}): "
              f"{'met' if target['met'] else 'missed'}")
    print(f"- projection: {figures['projection']}")
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"workers-{figures['started'].replace(':', '').replace('-', '')[:15]}Z.json"
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
