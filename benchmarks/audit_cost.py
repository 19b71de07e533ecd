"""What the audit trail costs a read (issue 13): `python -m benchmarks.audit_cost`.

Two servers on two fresh embedded stores (or two databases of MONGODB_URL) hold the same records:
one audits as it always does, the other runs with FHIR_BENCH_WITHOUT_AUDIT=1, the bench-only switch
that leaves the audit middleware out (fhir_server/config.py; never for real use: the law requires
the trace). Each loads the same patients and documents; then the same reads by id
(`GET /DocumentReference/{id}` and `GET /Patient/{id}`, the platform's token) are issued with
`--concurrency` requests in flight for `--duration` seconds, in interleaved rounds so the machine's
other work weighs on both alike. Before measuring it checks that the audited server writes one
AuditEvent per read and the other none (otherwise the ratio would measure nothing: exit 2). The gate
of issue 13: audited throughput at least `--min-ratio` (0.8) of the unaudited one, else exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from benchmarks import datagen
from benchmarks.server import Server

ROOT = Path(__file__).resolve().parent.parent
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
MODES = {"audited": {}, "unaudited": {"FHIR_BENCH_WITHOUT_AUDIT": "1"}}


def bundle(first: int, patients: int, documents: int) -> dict[str, Any]:
    entries = []
    for n in range(first, first + patients):
        url = f"urn:uuid:00000000-0000-4000-8000-{n:012d}"
        entries.append({"fullUrl": url, "resource": datagen.patient(n), "request": {"method": "POST", "url": "Patient"}})
        for d in range(documents):
            entries.append({"resource": {
                "resourceType": "DocumentReference", "status": "current",
                "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:1.2.250.1.999.13.{n}.{d}"},
                "type": {"coding": [{"system": "http://loinc.org", "code": "11490-0"}]},
                "subject": {"reference": url},
                "content": [{"attachment": {"contentType": "application/pdf", "url": f"https://documents.example.org/{n}/{d}.pdf"}}]},
                "request": {"method": "POST", "url": "DocumentReference"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def load(server: Server, patients: int, documents: int) -> list[str]:
    """The paths of what was loaded, in load order."""
    paths: list[str] = []
    with server.client(headers=FHIR_JSON, timeout=300) as client:
        for first in range(0, patients, 20):
            response = client.post("", json=bundle(first, min(20, patients - first), documents))
            response.raise_for_status()
            paths += [e["response"]["location"].split("/_history")[0] for e in response.json()["entry"]]
    return paths


def cpu_seconds(server: Server) -> tuple[float, float]:
    """CPU time of the server process and of its embedded store (0 with MONGODB_URL) so far."""
    store = server.store()
    return (sum(server.front().cpu_times()[:2]), sum(store.cpu_times()[:2]) if store is not None else 0.0)


async def measure(server: Server, paths: list[str], concurrency: int, duration: float) -> dict[str, float]:
    cpu_before = cpu_seconds(server)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.base_url, headers={**FHIR_JSON, **server.headers},
                                 limits=limits, timeout=60) as client:
        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get("/" + paths[i % len(paths)])
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        seconds = time.perf_counter() - started
    front, store = (after - before for after, before in zip(cpu_seconds(server), cpu_before))
    reads = max(len(latencies), 1)
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "throughput": len(latencies) / seconds,
            "cpu_ms_per_read": 1000 * (front + store) / reads, "server_cpu_ms_per_read": 1000 * front / reads,
            "store_cpu_ms_per_read": 1000 * store / reads,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)]}


def audited_reads(server: Server, path: str) -> int:
    """How many AuditEvents one read adds to the trail of the record it reads (platform's view)."""
    with server.client(headers=FHIR_JSON, timeout=60) as client:
        patient = client.get("/" + path).json()
        pid = patient["id"] if patient.get("resourceType") == "Patient" else patient["subject"]["reference"].split("/")[1]

        def count() -> int:
            response = client.get("/AuditEvent", params={"patient": pid, "_count": "1000"})
            return len(response.json().get("entry", [])) if response.status_code == 200 else 0

        before = count()
        client.get("/" + path)
        return count() - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--documents-per-patient", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-ratio", type=float, default=0.8)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="audit-cost-"))
    root.mkdir(parents=True, exist_ok=True)
    servers = {mode: Server(root / mode, env=env) for mode, env in MODES.items()}
    try:
        # Each server gives its own ids: the same records, read in the same order, under their ids.
        paths: dict[str, list[str]] = {}
        for mode, server in servers.items():
            server.start()
            paths[mode] = load(server, args.patients, args.documents_per_patient)
        reads = {mode: audited_reads(server, paths[mode][1]) for mode, server in servers.items()}
        if reads != {"audited": 1, "unaudited": 0}:
            print(f"audit not as expected (AuditEvents per read: {reads}): the ratio would measure nothing")
            return 2
        rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in servers}
        order = list(servers)
        for n in range(args.rounds):
            for mode in (order if n % 2 == 0 else order[::-1]):
                rounds[mode].append(asyncio.run(measure(servers[mode], paths[mode], args.concurrency, args.duration)))
    finally:
        for server in servers.values():
            server.stop()
    summary = {mode: {"throughput": statistics.median(r["throughput"] for r in results),
                      "p50_ms": statistics.median(r["p50_ms"] for r in results),
                      "p95_ms": statistics.median(r["p95_ms"] for r in results),
                      **{key: statistics.median(r[key] for r in results)
                         for key in ("cpu_ms_per_read", "server_cpu_ms_per_read", "store_cpu_ms_per_read")},
                      "errors": sum(int(r["errors"]) for r in results)} for mode, results in rounds.items()}
    ratio = summary["audited"]["throughput"] / summary["unaudited"]["throughput"]
    # On a machine others share, the CPU a read costs (server and store) varies less than throughput.
    cpu_ratio = summary["unaudited"]["cpu_ms_per_read"] / summary["audited"]["cpu_ms_per_read"]
    figures = {"started": started, "settings": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds,
               "summary": summary, "ratio": ratio, "cpu_ratio": cpu_ratio}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"audit-cost-{started.replace(':', '')}.json").write_text(json.dumps(figures, indent=2))
    for mode, figure in summary.items():
        print(f"{mode:>10}: {figure['throughput']:7.0f} reads/s  p50 {figure['p50_ms']:.1f} ms  "
              f"p95 {figure['p95_ms']:.1f} ms  CPU {figure['cpu_ms_per_read']:.2f} ms/read "
              f"(server {figure['server_cpu_ms_per_read']:.2f}, store {figure['store_cpu_ms_per_read']:.2f})  errors {figure['errors']}")
    print(f"audited / unaudited read throughput: {ratio:.0%} (target at least {args.min_ratio:.0%}); "
          f"reads per CPU second: {cpu_ratio:.0%}")
    errors = any(f["errors"] for f in summary.values())
    return 1 if ratio < args.min_ratio or errors else 0


if __name__ == "__main__":
    sys.exit(main())
