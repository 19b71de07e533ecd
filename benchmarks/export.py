"""Bulk export against the store's own read rate: `python -m benchmarks.export`.

Issue 17 ("100k resources exported in a test run of `make bench` with its rate reported") and
../shared/DECISIONS.md ("bulk rates on the embedded store are set against its own rate for the
same documents, measured side by side"). On a fresh server (embedded store, or MONGODB_URL):

- data: `--patients` Patients and one Observation each written through the server (a transaction
  per 100), then the stored Observation documents cloned by PyMongo, each clone a new id in the same
  record, until the collection holds `--resources` resources in all with the Patients: the
  documents are exactly what the server writes, without spending the run on writing them one by one;
- export: `GET /fhir/$export?_type=Patient,Observation` with a full-access system token, polled
  every 0.1 s until the manifest; the time is from the kick-off sent to the manifest received
  (everything read, encoded and written to the store as NDJSON chunks); then every file
  downloaded (timed apart) and its lines counted against the manifest. The server's peak RSS is
  sampled every 50 ms during the export, beside its RSS just before;
- store: the same documents read by PyMongo straight from the store, nothing decoded beyond BSON,
  twice: by the export's own queries (keyset pages of 1,000 on `sid`, bounded by `ts`), then by one
  cursor per collection in id order (batches of 1,000): the store's raw read rate. CPU seconds of
  the server and the store are taken around the export and the pages.

Exit 1 when the export lost or added a resource.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from pymongo import AsyncMongoClient

from benchmarks import datagen, report
from benchmarks.server import Server
from fhir_server.export.runner import PAGE
from fhir_server.timefmt import instant, now_instant
from tests.server_process import server_token

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "export.json"
TYPES = ("Patient", "Observation")
INSERT_BATCH = 500
SAMPLE_SECONDS = 0.05


def scale(text: str) -> int:
    return int(text[:-1]) * 1000 if text.endswith("k") else int(text)


def observation(subject: str, n: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
            "subject": {"reference": subject}, "effectiveDateTime": f"2026-{1 + n % 12:02d}-01",
            "valueQuantity": {"value": 70 + n % 40, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                              "code": "mg/dL"}}


async def seed(server: Server, patients: int) -> None:
    """The Patients, and one Observation each, through the server."""
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=600.0) as client:
        for start in range(0, patients, 100):
            entries = []
            for n in range(start, min(start + 100, patients)):
                full = f"urn:uuid:{uuid.uuid4()}"
                entries.append({"fullUrl": full, "resource": datagen.patient(n),
                                "request": {"method": "POST", "url": "Patient"}})
                entries.append({"resource": observation(full, n), "request": {"method": "POST", "url": "Observation"}})
            response = await client.post("", content=orjson.dumps({"resourceType": "Bundle", "type": "transaction",
                                                                   "entry": entries}),
                                         headers={"Content-Type": "application/fhir+json"})
            if response.status_code != 200:
                raise RuntimeError(f"seeding refused ({response.status_code}): {response.text[:500]}")


async def clone(db: Any, total: int, patients: int) -> int:
    """Observations cloned from those the server stored until the two types hold `total`
    resources; how many they hold (counted as written: a count on the embedded store scans)."""
    stored = await db["Observation"].find({}).to_list(None)
    missing = max(total - len(stored) - patients, 0)
    batch: list[dict[str, Any]] = []
    for n in range(missing):
        source = stored[n % len(stored)]
        new_id = str(uuid.uuid4())
        batch.append({**source, "_id": new_id, "sid": new_id, "res": {**source["res"], "id": new_id}})
        if len(batch) == INSERT_BATCH:
            await db["Observation"].insert_many(batch)
            batch = []
    if batch:
        await db["Observation"].insert_many(batch)
    return patients + len(stored) + missing


def peak_rss(server: Server, stop: threading.Event, found: list[int]) -> None:
    process = server.front()
    while not stop.is_set():
        found[0] = max(found[0], process.memory_info().rss)
        time.sleep(SAMPLE_SECONDS)


async def export(server: Server, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json", "Prefer": "respond-async"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=600.0) as client:
        started = time.perf_counter()
        response = await client.get("/$export", params={"_type": ",".join(TYPES)}, headers=headers)
        if response.status_code != 202:
            raise RuntimeError(f"kick-off refused ({response.status_code}): {response.text[:300]}")
        status = response.headers["Content-Location"]
        while True:
            polled = await client.get(status, headers=headers)
            if polled.status_code == 200:
                break
            if polled.status_code != 202:
                raise RuntimeError(f"status poll failed ({polled.status_code}): {polled.text[:300]}")
            await asyncio.sleep(0.1)
        export_seconds = time.perf_counter() - started
        manifest = polled.json()
        started = time.perf_counter()
        size = 0
        lines = 0
        for item in manifest["output"]:
            async with client.stream("GET", item["url"], headers=headers) as download:
                async for chunk in download.aiter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
        download_seconds = time.perf_counter() - started
        await client.delete(status, headers=headers)
    return {"export_s": export_seconds, "download_s": download_seconds, "bytes": size, "lines": lines,
            "manifest_count": sum(i["count"] for i in manifest["output"])}


async def raw_read(db: Any) -> tuple[float, int]:
    """Seconds to read every document of the exported types straight from the store by one cursor
    per type in id order, and how many."""
    started = time.perf_counter()
    count = 0
    for name in TYPES:
        cursor = db[name].find({"del": False}).sort("sid", 1).batch_size(PAGE)
        async for _ in cursor:
            count += 1
    return time.perf_counter() - started, count


async def raw_pages(db: Any) -> float:
    """Seconds to read the same documents by the export's own queries (keyset pages on `sid`,
    bounded by `ts`, the index fields left out), with no server in between."""
    started = time.perf_counter()
    until = instant(now_instant())
    for name in TYPES:
        last: str | None = None
        while True:
            query: dict[str, Any] = {"ts": {"$lte": until}, "del": False}
            if last is not None:
                query["sid"] = {"$gt": last}
            docs = await db[name].find(query, {"ix": 0, "sk": 0}).sort("sid", 1).limit(PAGE).to_list(PAGE)
            if len(docs) < PAGE:
                break
            last = docs[-1]["sid"]
    return time.perf_counter() - started


def cpu_seconds(server: Server) -> dict[str, float]:
    def seconds(process: Any) -> float:
        if process is None:
            return 0.0
        times = process.cpu_times()
        return float(times.user + times.system)
    return {"server": seconds(server.front()), "store": seconds(server.store())}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-export-")) / "data"
    server = Server(data_dir).start()
    try:
        # The embedded store answers nobody while it writes a batch: generous timeouts on a loaded machine.
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            server.store_url(), tz_aware=True, connectTimeoutMS=300_000, socketTimeoutMS=1_200_000,
            serverSelectionTimeoutMS=300_000)
        db = mongo[server.database]
        machine = await report.machine(mongo, server.external_store is not None)
        await seed(server, args.patients)
        resources = await clone(db, args.resources, args.patients)
        token = server_token(server.data_dir, server.base_url, "system", client_id="bench-export")
        baseline = server.front().memory_info().rss
        stop, found = threading.Event(), [baseline]
        sampler = threading.Thread(target=peak_rss, args=(server, stop, found), daemon=True)
        sampler.start()
        before = cpu_seconds(server)
        try:
            exported = await export(server, token)
        finally:
            stop.set()
            sampler.join()
        export_cpu = {k: round(v - before[k], 1) for k, v in cpu_seconds(server).items()}
        before = cpu_seconds(server)
        pages_seconds = await raw_pages(db)
        pages_cpu = {k: round(v - before[k], 1) for k, v in cpu_seconds(server).items()}
        store_seconds, store_count = await raw_read(db)
        await mongo.close()
    finally:
        server.stop()
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    megabytes = exported["bytes"] / 1e6
    # Seconds keep four decimals: a short run lasts a fraction of a second, and the ratios below
    # must be recomputable from the seconds written beside them.
    return {"machine": machine, "resources": resources, "patients": args.patients,
            "exported": exported["lines"], "manifest_count": exported["manifest_count"],
            "export_s": round(exported["export_s"], 4), "download_s": round(exported["download_s"], 4),
            "ndjson_mb": round(megabytes, 1),
            "export_per_s": round(resources / exported["export_s"], 1),
            "export_mb_per_s": round(megabytes / exported["export_s"], 4),
            "download_mb_per_s": round(megabytes / exported["download_s"], 4) if exported["download_s"] else None,
            "server_rss_before_mb": round(baseline / 2**20, 1), "server_rss_peak_mb": round(found[0] / 2**20, 1),
            "export_cpu_s": export_cpu,
            "store_pages_s": round(pages_seconds, 4), "store_pages_per_s": round(resources / pages_seconds, 1),
            "store_pages_cpu_s": pages_cpu,
            "store_read_s": round(store_seconds, 4), "store_read": store_count,
            "store_read_per_s": round(store_count / store_seconds, 1),
            "ratio": round(store_seconds / exported["export_s"], 3),
            "pages_ratio": round(pages_seconds / exported["export_s"], 3)}


def table(figures: dict[str, Any]) -> str:
    return "\n".join([
        "| Resources | $export (s) | resources/s | NDJSON MB | MB/s | download MB/s | server RSS before → peak (MB) "
        "| store, export's pages (resources/s) | ratio | store, one cursor (resources/s) | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {figures['resources']} | {figures['export_s']} | {figures['export_per_s']} | {figures['ndjson_mb']} "
        f"| {figures['export_mb_per_s']} | {figures['download_mb_per_s']} | {figures['server_rss_before_mb']} → "
        f"{figures['server_rss_peak_mb']} | {figures['store_pages_per_s']} | {figures['pages_ratio']:.0%} "
        f"| {figures['store_read_per_s']} | {figures['ratio']:.0%} |",
        "", f"CPU seconds: export {figures['export_cpu_s']}, store pages {figures['store_pages_cpu_s']}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=scale, default=100_000, help="Patients and Observations in all (e.g. 100k)")
    parser.add_argument("--patients", type=int, default=1_000)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the figures are written (JSON)")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(table(figures))
    if figures["exported"] != figures["resources"] or figures["manifest_count"] != figures["resources"]:
        print(f"the export holds {figures['exported']} lines for {figures['resources']} resources", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
