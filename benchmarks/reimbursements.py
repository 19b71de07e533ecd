"""The insurer's NDJSON import against the store's own bulk insert: `python -m benchmarks.reimbursements`.

Issue 23 and ../shared/DECISIONS.md: reimbursements for the whole population are imported at no
less than 60% of the embedded store's own bulk insert rate for the same documents, measured side
by side. On a fresh server (embedded store, or MONGODB_URL), after `--patients` Patients:

- import: `--claims` ExplanationOfBenefit lines (docs/RECORD-CONTENTS.md item d, grouped by patient
  as an insurer's extract is) sent to `POST /fhir/$import` with an insurer token; the time is the
  request's, from the first byte sent to the summary received, every line checked and stored;
- store: the documents that import stored (current versions, history entries, identifier lookup
  keys) read back and inserted again into a scratch database of the same store, with the same
  indexes, by insert_many in transactions of the same 1,000 resources: the store's own rate for
  the same documents, with no server in between. The scratch database keeps every round's
  documents, so its collections grow as the server's do.

Rounds alternate (import, then store), each with new claims and a new insurer organisation, so the
machine's other work weighs on both alike; the ratio is the median of the rounds'. Exit 1 when it is
below `--min-ratio`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from pymongo import AsyncMongoClient

from benchmarks import datagen, report
from benchmarks.server import Server
from fhir_server.storage.database import HISTORY
from fhir_server.search.lookup import LOOKUP
from fhir_server.operations.bulk_import import BATCH
from tests.access.claims import eob
from tests.server_process import server_token

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "reimbursements.json"
EOB = "ExplanationOfBenefit"
SCRATCH = "bench_raw_insert"


def claims(round_number: int, patient_ids: list[str], count: int) -> bytes:
    """`count` claims spread over the patients, each patient's together."""
    per_patient = max(count // len(patient_ids), 1)
    lines = []
    for p, patient_id in enumerate(patient_ids):
        for c in range(per_patient):
            if len(lines) == count:
                break
            lines.append(orjson.dumps(eob(f"Patient/{patient_id}", f"R{round_number}-{p}-{c}",
                                          day=f"2026-{1 + c % 12:02d}-{1 + p % 28:02d}", act=f"YYYY{c % 900:03d}",
                                          reimbursed=float(10 + c % 50))))
    return b"\n".join(lines) + b"\n"


async def create_patients(server: Server, count: int) -> list[str]:
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=300.0) as client:
        for start in range(0, count, 100):
            entries = [{"resource": datagen.patient(n), "request": {"method": "POST", "url": "Patient"}}
                       for n in range(start, min(start + 100, count))]
            response = await client.post("", content=orjson.dumps({"resourceType": "Bundle", "type": "transaction",
                                                                   "entry": entries}),
                                         headers={"Content-Type": "application/fhir+json"})
            response.raise_for_status()
            ids += [e["response"]["location"].split("/")[1] for e in response.json()["entry"]]
    return ids


async def import_round(server: Server, token: str, body: bytes, expected: int) -> float:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=3600.0) as client:
        started = time.perf_counter()
        response = await client.post("/$import", content=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+ndjson"})
        seconds = time.perf_counter() - started
    head = response.json()["issue"][0]["diagnostics"] if response.status_code == 200 else response.text[:500]
    if not head.startswith(f"{expected} lines read: {expected} stored"):
        raise RuntimeError(f"the import did not store every line ({response.status_code}): {head}")
    return seconds


async def stored_documents(mongo: AsyncMongoClient[dict[str, Any]], database: str,
                           depositor: str) -> list[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]:
    """What the import stored for one depositor: (current, history entry, lookup keys) per resource."""
    db = mongo[database]
    current = await db[EOB].find({"acc.dep": depositor}).to_list(None)
    history = {d["rid"]: d for d in await db[HISTORY].find({"rt": EOB, "acc.dep": depositor}).to_list(None)}
    ids = {d["_id"] for d in current}
    lookups: dict[str, list[dict[str, Any]]] = {}
    for doc in await db[LOOKUP].find({"k": {"$regex": f"^{EOB}\\|"}}).to_list(None):
        if doc["r"] in ids:
            lookups.setdefault(doc["r"], []).append(doc)
    return [(d, history[f"{EOB}/{d['_id']}"], lookups.get(d["_id"], [])) for d in current]


async def scratch(mongo: AsyncMongoClient[dict[str, Any]], database: str) -> Any:
    """A database with the three collections and the same indexes as the server's."""
    source, target = mongo[database], mongo[SCRATCH]
    for name in (EOB, HISTORY, LOOKUP):
        await target.create_collection(name)
        async for index in await source[name].list_indexes():
            if index["name"] != "_id_":
                await target[name].create_index(list(index["key"].items()), name=index["name"])
    return target


async def store_round(mongo: AsyncMongoClient[dict[str, Any]], target: Any,
                      documents: list[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(documents), BATCH):
        chunk = documents[start:start + BATCH]
        async with mongo.start_session() as session:
            async with await session.start_transaction():
                await target[EOB].insert_many([c for c, _, _ in chunk], session=session)
                await target[HISTORY].insert_many([h for _, h, _ in chunk], session=session)
                keys = [k for _, _, ks in chunk for k in ks]
                if keys:
                    await target[LOOKUP].insert_many(keys, session=session)
    return time.perf_counter() - started


def cpu(server: Server) -> dict[str, float]:
    """CPU seconds so far of the server, its store and this process (the client of both sides)."""
    def seconds(process: psutil.Process | None) -> float:
        if process is None:
            return 0.0
        times = process.cpu_times()
        return times.user + times.system
    return {"server": seconds(server.front()), "store": seconds(server.store()), "client": seconds(psutil.Process())}


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-eob-")) / "data"
    server = Server(data_dir).start()
    try:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.store_url(), tz_aware=True)
        machine = await report.machine(mongo, server.external_store is not None)
        patient_ids = await create_patients(server, args.patients)
        rounds = []
        target = None
        for r in range(args.rounds):
            finess = f"{910_000_100 + r}"
            token = server_token(server.data_dir, server.base_url, "system", organization=finess, role="insurer")
            body = claims(r, patient_ids, args.claims)
            before = cpu(server)
            import_seconds = await import_round(server, token, body, args.claims)
            import_cpu = spent(before, cpu(server))
            documents = await stored_documents(mongo, server.database, f"org:{finess}")
            # One scratch database for every round: it grows as the server's collections do.
            if target is None:
                target = await scratch(mongo, server.database)
            before = cpu(server)
            store_seconds = await store_round(mongo, target, documents)
            store_cpu = spent(before, cpu(server))
            rounds.append({"resources": len(documents), "import_s": round(import_seconds, 3),
                           "store_s": round(store_seconds, 3),
                           "import_per_s": round(len(documents) / import_seconds, 1),
                           "store_per_s": round(len(documents) / store_seconds, 1),
                           "ratio": round(store_seconds / import_seconds, 3),
                           # CPU milliseconds per resource, by process: what the load of the machine changes least.
                           "import_cpu_ms": {k: round(v * 1e3 / len(documents), 3) for k, v in import_cpu.items()},
                           "store_cpu_ms": {k: round(v * 1e3 / len(documents), 3) for k, v in store_cpu.items()}})
            print(f"round {r + 1}: {rounds[-1]}", file=sys.stderr)
        if target is not None:
            await mongo.drop_database(target.name)
        await mongo.close()
    finally:
        server.stop()
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    return {"machine": machine, "patients": args.patients, "claims_per_round": args.claims, "batch": BATCH,
            "rounds": rounds,
            "import_per_s": statistics.median(r["import_per_s"] for r in rounds),
            "store_per_s": statistics.median(r["store_per_s"] for r in rounds),
            "ratio": statistics.median(r["ratio"] for r in rounds), "min_ratio": args.min_ratio,
            "import_cpu_ms": _median_cpu(rounds, "import_cpu_ms"), "store_cpu_ms": _median_cpu(rounds, "store_cpu_ms")}


def _median_cpu(rounds: list[dict[str, Any]], key: str) -> dict[str, float]:
    return {k: round(statistics.median(r[key][k] for r in rounds), 2) for k in rounds[0][key]}


def table(figures: dict[str, Any]) -> str:
    lines = ["| Round | Resources | $import (resources/s) | store insert_many (resources/s) | Ratio |",
             "|---|---|---|---|---|"]
    for n, r in enumerate(figures["rounds"], 1):
        lines.append(f"| {n} | {r['resources']} | {r['import_per_s']} | {r['store_per_s']} | {r['ratio']:.0%} |")
    lines.append(f"| median | | {figures['import_per_s']} | {figures['store_per_s']} | {figures['ratio']:.0%} |")
    lines += ["", "CPU ms per resource (median over rounds): server / store / client",
              f"- $import: {figures['import_cpu_ms']}", f"- store insert_many: {figures['store_cpu_ms']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--claims", type=int, default=2_500, help="claims per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--min-ratio", type=float, default=0.6)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the figures are written (JSON)")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(table(figures))
    if figures["ratio"] < args.min_ratio:
        print(f"$import runs at {figures['ratio']:.0%} of the store's own bulk insert, under {args.min_ratio:.0%}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
