"""`python -m benchmarks.startup`: time from start to the first answer, and memory at rest.

Start-up is timed from launching `fhir-server serve` to its first `200` on `GET /fhir/metadata`
(the first answer a client gets); memory at rest is the resident memory of the server plus its
embedded store a few seconds after that, with no request in flight. Both are measured on an empty
data directory and on one holding `--resources` resources loaded through the server (built once,
kept under `.cache/`, reused by later runs), each start repeated `--repeat` times, median kept.

`--server-root DIR` (repeatable) measures the server found in another source tree, such as an
export of an earlier commit (`git archive <commit> | tar -x -C DIR`), on the same data, in turns
with this tree, so a before/after comparison shares the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from benchmarks import datagen
from benchmarks.load import load
from tests.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent
SETTLE_SECONDS = 3.0
PER_PATIENT = 1 + 2 * datagen.DOCUMENTS_PER_PATIENT + 3


@dataclass
class Start:
    seconds: float
    rss_mb: float


def _serve(root: Path, data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # The server is imported from `root`: the working directory comes first on `python -m`'s path.
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}/fhir"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # The store of a stopped server lingers briefly; the next start on this data dir waits for it.
    time.sleep(2.0)


def _rss_mb(process: subprocess.Popen[bytes]) -> float:
    front = psutil.Process(process.pid)
    total = front.memory_info().rss
    for child in front.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def start_once(root: Path, data_dir: Path, log: Path, timeout: float = 120.0) -> Start:
    started = time.perf_counter()
    process, base = _serve(root, data_dir, log)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}; see {log}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"no answer in {timeout}s; see {log}")
            try:
                if httpx.get(f"{base}/metadata", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        time.sleep(SETTLE_SECONDS)
        return Start(seconds, _rss_mb(process))
    finally:
        _stop(process)


def build_data(root: Path, data_dir: Path, resources: int, log: Path) -> None:
    """Load about `resources` resources (whole generated patients) through the server at `root`."""
    patients = max(resources // PER_PATIENT, 1)
    process, base = _serve(root, data_dir, log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/metadata", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        plan = datagen.Plan(first_patient=0, patients=patients)

        def progress(loaded: object) -> None:
            count = getattr(loaded, "resources")
            if getattr(loaded, "bundles") % 20 == 0:
                print(f"\r  loading: {count}/{patients * PER_PATIENT} resources", end="", flush=True)

        asyncio.run(load(base, datagen.bundles(plan), concurrency=4, progress=progress))
        print()
    finally:
        _stop(process)


def measure(roots: list[Path], data_dir: Path | None, repeat: int, log: Path) -> dict[str, dict[str, float]]:
    """Median start time and memory at rest per tree, starts taken in turns."""
    runs: dict[str, list[Start]] = {str(root): [] for root in roots}
    for _ in range(repeat):
        for root in roots:
            with tempfile.TemporaryDirectory(prefix="startup-") as scratch:
                target = Path(scratch) / "data"
                if data_dir is not None:
                    shutil.copytree(data_dir, target)
                runs[str(root)].append(start_once(root, target, log))
    return {
        root: {"start_s": round(statistics.median(s.seconds for s in starts), 2),
               "rss_mb": round(statistics.median(s.rss_mb for s in starts), 1),
               "runs": [[round(s.seconds, 2), round(s.rss_mb, 1)] for s in starts]}
        for root, starts in runs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=100_000, help="resources in the non-empty data dir (0: skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server-root", type=Path, action="append", default=[],
                        help="another source tree to measure beside this one (repeatable)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "startup",
                        help="where the loaded data dir is kept between runs")
    args = parser.parse_args(argv)
    roots = [ROOT, *(r.resolve() for r in args.server_root)]
    args.cache.mkdir(parents=True, exist_ok=True)
    log = args.cache / "server.log"
    figures: dict[str, object] = {"empty": measure(roots, None, args.repeat, log)}
    if args.resources:
        data_dir = args.cache / f"data-{args.resources}"
        complete = data_dir.with_name(data_dir.name + ".complete")
        if not complete.exists():
            shutil.rmtree(data_dir, ignore_errors=True)
            # Built by the first tree measured last (`--server-root`), so an older server can read it too.
            build_data(roots[-1], data_dir, args.resources, log)
            complete.write_text("", encoding="utf-8")
        figures[f"{args.resources} resources"] = measure(roots, data_dir, args.repeat, log)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
