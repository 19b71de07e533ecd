"""`python -m benchmarks.run`: load generated data through the server, measure every path against its
limits at each scale, print the table, write the JSON and docs/PERFORMANCE.md."""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from benchmarks import datagen, report, round_trips, wrk
from benchmarks.limits import BareEndpoint
from benchmarks.load import Loaded, load
from benchmarks.measure import Monitor, NotAvailable, Result, drive
from benchmarks.profile import Profiler, hot_spots
from benchmarks.scenarios import ALL
from benchmarks.scenarios.base import FRONT_BARE, FRONT_SERVER, JSON_HEADERS, Bench, Scenario, expect
from benchmarks.server import Server
from fhir_server.storage.database import OUTBOX
from fhir_server.storage.gate import Gate

ROOT = Path(__file__).resolve().parent.parent
# The store-insert limit writes here. A collection, not a database: the embedded store does not keep
# databases apart (the same collection name is the same table, and drop_database empties them all).
SCRATCH_COLLECTION = "bench_insert_limit"
# Fits `make bench` in 15 minutes on 2 shared cores: loading runs at about 150-200 documents/s there,
# so 100k documents alone would take 9-11 minutes (docs/PERFORMANCE.md has the measured rates).
DEFAULT_SCALES = "10k,50k"
# Loading leaves one outbox event per resource, which the dispatcher works through at about 200/s
# on the embedded store, in the server process: CPU figures taken meanwhile carry that work. After
# the first scale (where every path is measured) the run waits for it, this long at most; after
# the larger ones (searches only, each beside its bare route in the same minute) it does not.
SETTLE_SECONDS = 300.0
# A path's throughput against its bare route's is the ratio of two 5-second runs taken minutes
# apart, on two cores the load generator shares: the same build gave a read 80 % and 87 % of the
# bare route in two runs (2026-12-06). Measured in pairs, each path run right after a bare run,
# the load of the machine is alike on both sides of each ratio; the median of the rounds is kept.
# The search's p50 targets take the rounds too: its p50 against the bare route's is the median of
# the rounds' ratios, and its growth between scales that of the median p50 at each (the path's
# first run and its rounds).
PAIRS = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--scales", "--scale", dest="scales", default=DEFAULT_SCALES,
                        help="DocumentReference counts, comma-separated (10k,100k,1m): every path at the first, "
                             "searches again at each larger one (default %(default)s)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of measurement per path")
    parser.add_argument("--pairs", type=int, default=PAIRS,
                        help="rounds of a path measured right after its bare route, for its ratio to it "
                             "(the median round's ratio; 0: the two single measurements; default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per path (asyncio driver)")
    parser.add_argument("--driver", choices=("wrk", "asyncio"), default="wrk",
                        help="what drives the GET paths: wrk (1 thread, --connections; default) or the asyncio loop")
    parser.add_argument("--connections", type=int, default=wrk.CONNECTIONS, help="wrk connections (default %(default)s)")
    parser.add_argument("--round-trips", type=int, default=5,
                        help="documents per ingest path sent to a server recording its store commands (0: skip)")
    parser.add_argument("--load-concurrency", type=int, default=8, help="transaction bundles in flight while loading")
    parser.add_argument("--only", default="", help="measure only the paths whose name contains one of these (comma-separated)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="a new store directory, kept afterwards (default: a temporary one, removed at the end)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="sample the server with py-spy during each server path; collapsed stacks go here")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "PERFORMANCE.md"),
                        help="document rewritten with the figures; --doc '' leaves it alone")
    return parser


async def _settle(db: Any, limit: float) -> tuple[float, int]:
    """Wait until the outbox is empty or `limit` seconds passed: (seconds waited, events left)."""
    started = time.monotonic()
    left = await db[OUTBOX].count_documents({})
    while left and time.monotonic() - started < limit:
        await asyncio.sleep(1.0)
        left = await db[OUTBOX].count_documents({})
    return time.monotonic() - started, left


async def _drop_scratch(db: Any) -> None:
    for name in (SCRATCH_COLLECTION, f"{SCRATCH_COLLECTION}_history"):
        await db.drop_collection(name)


def _progress(label: str, target: int) -> Callable[[Loaded], None]:
    started = time.perf_counter()

    def show(loaded: Loaded) -> None:
        if loaded.bundles % 20 == 0:
            rate = loaded.documents / max(time.perf_counter() - started, 1e-9)
            print(f"\r  loading {label}: {loaded.documents}/{target} documents, {rate:.0f}/s", end="", flush=True)

    return show


def _selected(scenario: Scenario, first_scale: bool, only: list[str]) -> bool:
    if not (first_scale or scenario.every_scale):
        return False
    return not only or any(word in scenario.name for word in only)


async def measure(scenario: Scenario, bench: Bench, server: Server, bare: BareEndpoint, scale: int,
                  args: argparse.Namespace) -> Result:
    result = Result(scenario.name, scenario.group, scale, limits=dict(scenario.limits))
    front = {FRONT_SERVER: server.front, FRONT_BARE: bare.psutil_process}.get(scenario.front)
    try:
        monitor = Monitor(front() if front else None, server.store())
        load: Callable[[], Awaitable[Result]]
        if scenario.wrk is not None and args.driver == "wrk":
            root_url, paths = await scenario.wrk(bench)
            expect(await bench.client.get(root_url + paths[0], headers=JSON_HEADERS), 200)  # warm-up, and a check
            load = lambda: asyncio.to_thread(wrk.drive, root_url, paths, server.token, duration=args.duration,  # noqa: E731
                                             monitor=monitor, result=result, connections=args.connections)
        else:
            operation = await scenario.prepare(bench)
            load = lambda: drive(operation, concurrency=args.concurrency, duration=args.duration,  # noqa: E731
                                 monitor=monitor, result=result)
        if args.profile is None or scenario.front != FRONT_SERVER:
            await load()
        else:
            stacks = args.profile / f"{re.sub(r'[^A-Za-z0-9]+', '-', scenario.name).strip('-')}-{scale}.txt"
            with Profiler(server.front().pid, stacks, args.duration):
                await load()
            result.hot_spots = hot_spots(stacks)
    except NotAvailable as exc:
        result.status, result.note = "not available", str(exc)[:300]
    except Exception as exc:  # one broken path must not lose the figures of the others
        result.status, result.note = "failed", f"{exc.__class__.__name__}: {exc}"[:300]
    return result


async def paired_with_bare(scenario: Scenario, result: Result, bench: Bench, server: Server, bare: BareEndpoint,
                           scale: int, args: argparse.Namespace) -> None:
    """`result`'s ratio to its bare route: the median of `--pairs` rounds, each the bare route's run
    and then the path's (see PAIRS)."""
    limit = next(s for s in ALL if s.name == scenario.limits["bare"])
    ratios, p50s = [], []
    for _ in range(args.pairs):
        alone = await measure(limit, bench, server, bare, scale, args)
        path = await measure(scenario, bench, server, bare, scale, args)
        if alone.status != "ok" or path.status != "ok" or not alone.throughput:
            return
        ratios.append(round(path.throughput / alone.throughput, 3))
        p50s.append([path.p50_ms, alone.p50_ms])
    result.ratios["bare"] = statistics.median(ratios)
    result.paired_ratios, result.paired_p50_ms = ratios, p50s


async def run(args: argparse.Namespace) -> dict[str, Any]:
    scales = [datagen.parse_scale(s) for s in args.scales.split(",") if s.strip()]
    if scales != sorted(scales):
        raise SystemExit("--scales must grow: 10k,100k")
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    scratch_dir = None if args.data_dir else Path(tempfile.mkdtemp(prefix="fhir-bench-"))
    data_dir = args.data_dir or scratch_dir / "data"
    started = datetime.now(timezone.utc)
    server = Server(data_dir).start()
    bare: BareEndpoint | None = None
    mongo: AsyncMongoClient[dict[str, Any]] | None = None
    try:
        store_url = server.store_url()
        bare = BareEndpoint(store_url, server.database).wait()
        mongo = AsyncMongoClient(store_url, tz_aware=True)
        await _drop_scratch(mongo[server.database])
        machine = await report.machine(mongo, server.external_store is not None)
        loaded = Loaded()
        loads: list[dict[str, Any]] = []
        results: list[Result] = []
        limits = {"max_connections": args.concurrency * 2, "max_keepalive_connections": args.concurrency * 2}
        # Authentication is on, as in production: every request carries the platform's token.
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120.0, limits=httpx.Limits(**limits),
                                     headers=server.headers) as client:
            bench = Bench(server.base_url, server.root_url, server.mllp_port, loaded, client,
                          mongo[server.database], mongo[server.database][SCRATCH_COLLECTION], bare.url,
                          Gate(enabled=server.external_store is None, lock_dir=data_dir))
            for index, scale in enumerate(scales):
                plan = datagen.Plan.for_scale(scale, loaded.documents)
                step = await load(server.base_url, datagen.bundles(plan), args.load_concurrency,
                                  _progress(f"{scale:,}", scale - loaded.documents), server.headers)
                loaded.merge(step)
                bench.cache.clear()
                done = report.load_figures(scale, step)
                waited, left = await _settle(mongo[server.database], SETTLE_SECONDS if index == 0 else 0.0)
                done.update(outbox_wait_s=round(waited, 1), outbox_left=left)
                print(f"  outbox: waited {waited:.0f} s for the dispatcher, {left:,} events left")
                loads.append(done)
                print(f"\r  loaded {step.documents:,} documents ({step.resources:,} resources) in {step.seconds:.0f} s: "
                      f"{step.documents / max(step.seconds, 1e-9):.0f} documents/s, "
                      f"{step.resources / max(step.seconds, 1e-9):.0f} resources/s")
                for scenario in ALL:
                    if _selected(scenario, index == 0, only):
                        result = await measure(scenario, bench, server, bare, scale, args)
                        if "bare" in scenario.limits and result.status == "ok" and args.pairs > 0:
                            await paired_with_bare(scenario, result, bench, server, bare, scale, args)
                        print(report.line(result), flush=True)
                        results.append(result)
        report.add_ratios(results)
        return {
            "started": started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
            "settings": {"scales": scales, "duration": args.duration, "pairs": args.pairs, "concurrency": args.concurrency,
                         "load_concurrency": args.load_concurrency, "driver": args.driver,
                         "connections": args.connections},
            "machine": machine,
            "loads": loads,
            "results": [r.as_dict() for r in results],
        }
    finally:
        if mongo is not None:
            await _drop_scratch(mongo[server.database])
            await mongo.close()
        if bare is not None:
            bare.stop()
        server.stop()
        if scratch_dir is not None:
            shutil.rmtree(scratch_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    figures = asyncio.run(run(args))
    if args.round_trips:
        print("  store round trips per ingested document (a server recording its commands):", flush=True)
        figures["round_trips"] = round_trips.measure(args.round_trips)
    figures["targets"] = report.targets(figures)
    figures["targets_18"] = report.targets_18(figures)
    print()
    print(report.table(figures))
    path = report.write_json(figures, args.results)
    print(f"\nJSON: {path}")
    if args.doc:
        report.write_document(figures, Path(args.doc))
        print(f"Document: {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
