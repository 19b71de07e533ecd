"""Enrolment against the store's own bulk insert: `python -m benchmarks.enrol`.

Issue 14 and ../shared/DECISIONS.md ("Time and budgets"): the roster is enrolled at no less than
60% of the embedded store's own bulk insert rate for the same documents, measured side by side;
the issue's 2,000 persons/s is the aspiration, reported as reached or not; memory stays flat from
10k to 100k persons. For each scale:

- enrol: a synthetic roster (tests/record/rosters.py: test INS-NIA OID, one person in ten a minor
  with a legal representative, two in three with an e-mail address, the others told by post) run
  through `fhir-server enrol --data-dir` as an operator runs it, in its own process, on a fresh
  data dir (the command starts the embedded store itself). The time is the command's own (its
  summary: from the first line read to the last batch committed, without the start-up); the
  memory is the peak RSS of the enrol process, sampled every 50 ms.
- store: every document that run stored (Patients, RelatedPersons, their history entries, lookup
  keys and id routes, outbox events, queued e-mails, postal rows) inserted again by PyMongo into a
  scratch database of the same store with the same indexes, one transaction per batch of the same
  number of persons, insert_many per collection: the store's own rate for the same documents, with
  no server code in between (reading them back is not timed).

Exit 1 when the ratio at some scale is under `--min-ratio`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from pymongo import AsyncMongoClient

from benchmarks import report
from fhir_server.record.cli import DEFAULT_BATCH
from fhir_server.record.notice import POSTAL_NOTICES
from fhir_server.search.lookup import LOOKUP
from fhir_server.storage.database import HISTORY, MAIL_QUEUE, OUTBOX
from fhir_server.storage.embedded import EmbeddedStore
from fhir_server.storage.sharding import IDS
from tests.record.rosters import new_prefix, population, write_ndjson

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "enrol.json"
DATABASE = "fhir"
SCRATCH = "bench_raw_enrol"
COLLECTIONS = ("Patient", "RelatedPerson", HISTORY, LOOKUP, IDS, OUTBOX, MAIL_QUEUE, POSTAL_NOTICES)
SAMPLE_SECONDS = 0.05
ASPIRATION = 2000.0


def scale(text: str) -> int:
    return int(text[:-1]) * 1000 if text.endswith("k") else int(text)


def enrol(data_dir: Path, roster: Path, batch: int) -> dict[str, Any]:
    """The command's summary, with the peak RSS and CPU seconds of its process."""
    command = [sys.executable, "-m", "fhir_server.cli", "enrol", "--data-dir", str(data_dir), "--quiet", "--json",
               "--batch", str(batch), str(roster)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(process.pid)
    peak = 0
    cpu = 0.0

    def sample() -> None:
        nonlocal peak, cpu
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
                times = watched.cpu_times()
                cpu = times.user + times.system
            except psutil.Error:
                return
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"enrol failed ({process.returncode}): {err[-2000:]}")
    summary: dict[str, Any] = json.loads(out.splitlines()[-1])
    summary["peak_rss_mb"] = round(peak / 2**20, 1)
    summary["cpu_s"] = round(cpu, 2)
    return summary


async def store_side(url: str, persons: int, batch: int) -> tuple[float, dict[str, int]]:
    """Seconds the store takes to insert what enrolment stored, and how many documents of each kind."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        source, target = mongo[DATABASE], mongo[SCRATCH]
        await mongo.drop_database(SCRATCH)
        counts = {}
        for name in COLLECTIONS:
            await target.create_collection(name)
            async for index in await source[name].list_indexes():
                if index["name"] != "_id_":
                    await target[name].create_index(list(index["key"].items()), name=index["name"])
            counts[name] = await source[name].count_documents({})
        transactions = math.ceil(persons / batch)
        cursors = {name: source[name].find({}) for name in COLLECTIONS}
        seconds = 0.0
        for _ in range(transactions):
            chunk = {name: await cursors[name].to_list(math.ceil(counts[name] / transactions)) for name in COLLECTIONS}
            started = time.perf_counter()
            async with mongo.start_session() as session:
                async with await session.start_transaction():
                    for name, documents in chunk.items():
                        if documents:
                            await target[name].insert_many(documents, session=session)
            seconds += time.perf_counter() - started
        await mongo.drop_database(SCRATCH)
        return seconds, counts
    finally:
        await mongo.close()


def run_scale(persons: int, batch: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-enrol-"))
    try:
        roster = write_ndjson(work / "roster.ndjson", population(new_prefix(), persons))
        data_dir = work / "data"
        summary = enrol(data_dir, roster, batch)
        if summary["created"] != persons:
            raise RuntimeError(f"enrol created {summary['created']} of {persons}: {summary['rejects'][:3]}")
        store = EmbeddedStore(data_dir)
        url = store.start()
        try:
            store_seconds, documents = asyncio.run(store_side(url, persons, batch))
            machine = asyncio.run(_machine(url))
        finally:
            store.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    enrol_seconds = summary["seconds"]
    return {"persons": persons, "batch": batch, "documents": documents, "enrol_s": enrol_seconds,
            "enrol_per_s": round(persons / enrol_seconds, 1), "store_s": round(store_seconds, 3),
            "store_per_s": round(persons / store_seconds, 1), "ratio": round(store_seconds / enrol_seconds, 3),
            "peak_rss_mb": summary["peak_rss_mb"], "enrol_cpu_ms_per_person": round(summary["cpu_s"] * 1e3 / persons, 2),
            "notices": summary["notices"], "machine": machine}


async def _machine(url: str) -> dict[str, Any]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        return await report.machine(mongo, False)
    finally:
        await mongo.close()


def table(figures: dict[str, Any]) -> str:
    lines = ["| Persons | enrol (persons/s) | store insert_many (persons/s) | Ratio | Peak RSS of enrol (MB) | enrol CPU (ms/person) |",
             "|---|---|---|---|---|---|"]
    for r in figures["scales"]:
        lines.append(f"| {r['persons']:,} | {r['enrol_per_s']} | {r['store_per_s']} | {r['ratio']:.0%} | "
                     f"{r['peak_rss_mb']} | {r['enrol_cpu_ms_per_person']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10k,100k", help="roster sizes, comma-separated (10k, 100k, 500)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="persons per transaction, both sides")
    parser.add_argument("--min-ratio", type=float, default=0.6)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the figures are written (JSON)")
    args = parser.parse_args(argv)
    scales = []
    for text in args.scales.split(","):
        scales.append(run_scale(scale(text.strip()), args.batch))
        print(f"{scales[-1]}", file=sys.stderr)
    figures = {"scales": scales, "min_ratio": args.min_ratio, "aspiration_per_s": ASPIRATION}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(table(figures))
    low = [r for r in scales if r["ratio"] < args.min_ratio]
    for r in low:
        print(f"enrol runs at {r['ratio']:.0%} of the store's own bulk insert at {r['persons']:,} persons, "
              f"under {args.min_ratio:.0%}", file=sys.stderr)
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
