"""wrk as the load generator of the HTTP GET paths (issue 18): a C client with one thread costs a
small fraction of the server's CPU per request, where an httpx client costs about as much as the
server's read, so the rates and the ratios to the bare route are the server's, not the client's.

`benchmarks/reads.lua` sends GETs drawn at random from a file of paths, with a bearer token, and
prints its figures as one JSON line. wrk is the Debian package: installed when missing and this
runs as root (saying so), otherwise the harness stops and says how to install it.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.measure import Monitor, Result

LUA = Path(__file__).resolve().parent / "reads.lua"
# The setting: one wrk thread, 16 connections.
THREADS = 1
CONNECTIONS = 16


def ensure_wrk() -> str:
    """wrk's path; installed from Debian when missing and allowed (root), as `make bench` needs on CI."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: apt-get install wrk (as root), then run again")
    print("wrk is missing: installing the Debian package (apt-get install wrk)", file=sys.stderr, flush=True)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


def children_cpu_seconds() -> float:
    """CPU time of this process's reaped children: wrk's, once it has exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(binary: str, root_url: str, paths: Path, token: str, connections: int, seconds: int,
        threads: int = THREADS) -> tuple[dict[str, Any], float]:
    """One wrk run on `root_url` over the paths of the file: the figures its script prints, and wrk's CPU seconds."""
    command = [binary, "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds}s", "--latency",
               "--timeout", "10s", "-s", str(LUA), root_url]
    env = {**os.environ, "READS_PATHS": str(paths), "READS_TOKEN": token}
    before = children_cpu_seconds()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    used = children_cpu_seconds() - before
    line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-500:]} {done.stdout[-500:]}")
    return json.loads(line.removeprefix("RESULT ")), used


def drive(root_url: str, paths: list[str], token: str, *, duration: float, monitor: Monitor, result: Result,
          connections: int = CONNECTIONS) -> Result:
    """GET the paths for `duration` seconds with wrk and fill `result` as `measure.drive` does."""
    binary = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as handle:
        handle.write("\n".join(paths) + "\n")
    try:
        with monitor:
            figures, wrk_cpu = run(binary, root_url, Path(handle.name), token, connections, max(1, math.ceil(duration)))
    finally:
        os.unlink(handle.name)
    done, elapsed = figures["requests"], figures["duration_us"] / 1e6
    errors = sum(figures["errors"].values())
    latency = figures["latency_us"]
    result.requests, result.errors, result.seconds = done, errors, round(elapsed, 3)
    result.throughput = round(done / elapsed, 1) if elapsed else 0.0
    result.p50_ms, result.p95_ms, result.p99_ms = (round(latency[p] / 1000, 2) for p in ("p50", "p95", "p99"))
    if done:
        if monitor.front is not None:
            result.cpu_ms_per_request = round(monitor.cpu_front / done * 1000, 3)
        if monitor.store is not None:
            result.store_cpu_ms_per_request = round(monitor.cpu_store / done * 1000, 3)
        result.client_cpu_ms_per_request = round(wrk_cpu / done * 1000, 3)
    result.peak_rss_mb = round(monitor.peak_rss / 2**20, 1)
    result.driver = f"wrk {min(THREADS, connections)} thread, {connections} connections"
    if errors:
        result.note = f"{errors} errors (wrk: {figures['errors']})"
        if errors >= done:
            result.status = "failed"
    return result
