"""What issue 12's access rules cost a search: `python -m benchmarks.access_rules`.

Loads practitioners, then patients with their documents (some labelled MASQUE_PS or INVISIBLE_PATIENT
of TRE_A07, several document types) and their privacy Consents, through the server's transaction
endpoint on a fresh embedded store (or MONGODB_URL). Then the same per-patient DocumentReference
searches are issued by three callers, in interleaved rounds so the machine's other work weighs on
all three alike, one request at a time and several in flight:

- platform: the platform's token, no rules (full access);
- practitioner: a physician every patient authorised (a permit Consent naming them): rules on;
- patient: each searched patient's own token: rules on (INVISIBLE_PATIENT hidden).

Before measuring, it checks that the rules are there at all: a practitioner nobody authorised is
refused (403), the authorised one never sees a document another professional masked, the patient
never sees an INVISIBLE_PATIENT one. The gate of issue 12 ("search with the rules on costs at most
15% more p50 than without at 50k documents"): exit 1 when a practitioner/platform p50 ratio exceeds
`--max-ratio`, exit 2 when the rules are not enforced (the ratio would then measure nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import orjson
from pymongo import AsyncMongoClient

from benchmarks import datagen, report, store_commands
from benchmarks.load import FHIR_JSON, Loaded, load
from benchmarks.measure import Monitor, percentile
from benchmarks.server import Server
from tests.server_process import server_token

ROOT = Path(__file__).resolve().parent.parent
CALLERS = ("platform", "practitioner", "patient")
MODES = ("sequential", "concurrent")
SHAPES = ("patient", "patient+status", "patient+type")
ALL_SHAPES = "all"
# Practitioner 0 is the one measured: authorised by every patient, never anyone's médecin traitant.
SEARCHER = 0
# Requests per caller before measuring: each shape for a few patients.
WARM_UP = 30


NAMESPACE = uuid.UUID("0b6a8f0e-2c1d-4e7a-9b1f-5d3c2a1e0f12")


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(map(str, parts))))


@cache
def codes() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "data" / "access.json").read_text(encoding="utf-8"))


def idnatps(practitioner: int) -> str:
    """A 12-digit IdNatPs ("8" + an 11-digit RPPS) unique to the practitioner number."""
    return f"8{10_000_000_000 + practitioner}"


@dataclass(frozen=True)
class Sizes:
    patients: int = 500
    documents_per_patient: int = 100
    practitioners: int = 20
    entries_per_bundle: int = 100

    @property
    def documents(self) -> int:
        return self.patients * self.documents_per_patient


def practitioner(n: int) -> dict[str, Any]:
    return {"resourceType": "Practitioner",
            "identifier": [{"system": codes()["idnatps_system"], "value": idnatps(n)}],
            "name": [{"family": f"PRATICIEN{n}", "given": [f"Prenom{n}"]}]}


def _label(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": codes()["visibility"]["system"], "code": code}]}]


def label_and_author(n: int, d: int, practitioners: int) -> tuple[str | None, int]:
    """One document in ten is masked (half of them by the measured practitioner, who keeps seeing those
    as their author; half by another), one in ten is invisible to the patient; authors rotate."""
    other = 1 + (n + d) % (practitioners - 1)
    if d % 10 == 3:
        return codes()["visibility"]["masked"], SEARCHER if d % 20 == 13 else other
    if d % 10 == 6:
        return codes()["visibility"]["invisible_patient"], other
    return None, (n + d) % practitioners


def document(patient_ref: str, author: dict[str, Any], label: str | None, n: int, d: int) -> dict[str, Any]:
    type_code, type_display = datagen.document_type(n + d)
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:1.2.250.1.999.12.{n}.{d}"},
        "status": "current",
        "type": {"coding": [{"system": datagen.codes()["document_types"]["system"], "code": type_code,
                             "display": type_display}]},
        "subject": {"reference": patient_ref},
        "author": [author],
        "date": f"{2015 + (n + d) % 10}-{1 + d % 12:02d}-{1 + n % 28:02d}T10:00:00+01:00",
        "content": [{"attachment": {"contentType": "application/pdf",
                                    "url": f"https://documents.example.org/{n}/{d}.pdf"}}],
    }
    if label:
        resource["securityLabel"] = _label(label)
    return resource


def consent(patient_ref: str, provision: dict[str, Any]) -> dict[str, Any]:
    scope, category = datagen.codes()["consent_scope"], datagen.codes()["consent_category"]
    return {"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": scope["system"], "code": scope["code"]}]},
            "category": [{"coding": [{"system": category["system"], "code": category["code"]}]}],
            "patient": {"reference": patient_ref},
            "policyRule": {"coding": [codes()["consent_policy_rule"]]},
            "provision": provision}


def _actor(practitioner_id: str) -> list[dict[str, Any]]:
    return [{"role": {"coding": [codes()["consent_actor_role"]]}, "reference": {"reference": f"Practitioner/{practitioner_id}"}}]


def _author(practitioner_ids: list[str], n: int) -> dict[str, Any]:
    """The stored Practitioner, and its IdNatPs: the rules know a masked document's author by the latter."""
    return {"reference": f"Practitioner/{practitioner_ids[n]}",
            "identifier": {"system": codes()["idnatps_system"], "value": idnatps(n)}}


def patient_entries(n: int, sizes: Sizes, practitioner_ids: list[str]) -> list[dict[str, Any]]:
    """A patient with a médecin traitant, their documents, and their Consents: the measured practitioner
    and one other authorised; every fifth patient blocks a third one, every tenth opposes emergency access."""
    count = sizes.practitioners
    patient_url = f"urn:uuid:{_uuid('access-patient', n)}"
    resource = datagen.patient(n)
    resource["generalPractitioner"] = [{"reference": f"Practitioner/{practitioner_ids[1 + n % (count - 1)]}"}]
    entries = [_post(patient_url, resource)]
    for d in range(sizes.documents_per_patient):
        label, author = label_and_author(n, d, count)
        entries.append(_post(f"urn:uuid:{_uuid('access-doc', n, d)}",
                             document(patient_url, _author(practitioner_ids, author), label, n, d)))
    consents = [consent(patient_url, {"type": "permit", "actor": _actor(practitioner_ids[SEARCHER])}),
                consent(patient_url, {"type": "permit", "actor": _actor(practitioner_ids[1 + (n + 1) % (count - 1)])})]
    if n % 5 == 0:
        consents.append(consent(patient_url, {"type": "deny", "actor": _actor(practitioner_ids[1 + (n + 2) % (count - 1)])}))
    if n % 10 == 0:
        consents.append(consent(patient_url, {"type": "deny", "purpose": [codes()["emergency_purpose"]]}))
    entries += [_post(f"urn:uuid:{_uuid('access-consent', n, i)}", c) for i, c in enumerate(consents)]
    return entries


def _post(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def _transaction(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bundles(sizes: Sizes, practitioner_ids: list[str]) -> Iterator[dict[str, Any]]:
    """Whole patients per transaction, about `entries_per_bundle` entries each (at least one patient)."""
    entries: list[dict[str, Any]] = []
    for n in range(sizes.patients):
        group = patient_entries(n, sizes, practitioner_ids)
        if entries and len(entries) + len(group) > sizes.entries_per_bundle:
            yield _transaction(entries)
            entries = []
        entries += group
    if entries:
        yield _transaction(entries)


@dataclass(frozen=True)
class Query:
    shape: str
    patient_number: int
    url: str


def queries(loaded: Loaded, searched: int) -> list[Query]:
    """Every shape for `searched` patients spread over the loaded ones, in the same order for every caller."""
    by_number = sorted((number, pid) for pid, (number, _) in loaded.patients.items())
    step = max(len(by_number) // max(searched, 1), 1)
    chosen = by_number[::step][:searched]
    out = []
    for number, pid in chosen:
        type_code, _ = datagen.document_type(number + 1)
        # `Patient/{id}`: one indexed key. A bare id means Patient or Group, an `$in` the embedded store
        # answers by a full scan (docs/PERFORMANCE.md), which a rule's `pat` key would then speed up.
        patient = f"DocumentReference?patient=Patient/{pid}"
        out += [Query("patient", number, f"{patient}&_count=20"),
                Query("patient+status", number, f"{patient}&status=current&_count=20"),
                Query("patient+type", number,
                      f"{patient}&type={datagen.codes()['document_types']['system']}|{type_code}&_count=20")]
    return out


@dataclass
class Callers:
    """The bearer token of each caller for a query (the patient's is the searched patient's own)."""

    platform: str
    practitioner: str
    patients: dict[int, str]
    unauthorised: str

    def token(self, caller: str, query: Query) -> str:
        if caller == "patient":
            return self.patients[query.patient_number]
        return self.platform if caller == "platform" else self.practitioner


def callers(data_dir: Path, base_url: str, searched: list[int], practitioners: int) -> Callers:
    """Tokens signed with the key of the server of `data_dir`, for `base_url`."""
    def practitioner_token(n: int) -> str:
        return server_token(data_dir, base_url, "practitioner", idnatps=idnatps(n),
                            profession=codes()["physician_profession"])

    # The last practitioner number is never used in the data: nobody authorised them.
    return Callers(server_token(data_dir, base_url), practitioner_token(SEARCHER),
                   {n: server_token(data_dir, base_url, "patient", ins=datagen.ins_value(n)) for n in searched},
                   practitioner_token(practitioners))


async def explain(data_dir: Path, batch: list[Query], searched: list[int], practitioners: int,
                  callers_measured: tuple[str, ...], repeat: int) -> dict[str, Any]:
    """The store commands of each caller's searches, on the stopped server's data (benchmarks.store_commands)."""
    tokens = callers(data_dir, store_commands.BASE_URL, searched, practitioners)
    async with store_commands.application(data_dir) as client:
        return {caller: await store_commands.profile(
                    client, [(q.url, _headers(tokens.token(caller, q))) for q in batch], repeat)
                for caller in callers_measured}


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}


async def _all_pages(client: httpx.AsyncClient, url: str, token: str) -> tuple[int, list[dict[str, Any]]]:
    """Every DocumentReference a caller finds, following `next` links; the first status if not 200."""
    found: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = await client.get(next_url, headers=_headers(token))
        if response.status_code != 200:
            return response.status_code, found
        bundle = response.json()
        found += [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
        next_url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    return 200, found


def _labels(resource: dict[str, Any]) -> set[str]:
    return {c.get("code", "") for label in resource.get("securityLabel", []) for c in label.get("coding", [])}


async def enforcement(client: httpx.AsyncClient, tokens: Callers, patient: tuple[str, int], searcher_id: str) -> dict[str, Any]:
    """Whether the rules hold on one searched patient: what each caller is shown of their whole record."""
    pid, number = patient
    url = f"DocumentReference?patient={pid}&_count=100"
    masked, invisible = codes()["visibility"]["masked"], codes()["visibility"]["invisible_patient"]
    _, everything = await _all_pages(client, url, tokens.platform)
    status, seen_by_practitioner = await _all_pages(client, url, tokens.practitioner)
    patient_status, seen_by_patient = await _all_pages(client, url, tokens.patients[number])
    unauthorised_status, _ = await _all_pages(client, url, tokens.unauthorised)
    masked_by_others = {r["id"] for r in everything if masked in _labels(r)
                        and r["author"][0]["reference"] != f"Practitioner/{searcher_id}"}
    invisible_ids = {r["id"] for r in everything if invisible in _labels(r)}
    checks = {
        "documents_in_record": len(everything),
        "masked_by_others": len(masked_by_others),
        "invisible_to_patient": len(invisible_ids),
        "practitioner_status": status,
        "practitioner_sees": len(seen_by_practitioner),
        "patient_status": patient_status,
        "patient_sees": len(seen_by_patient),
        "unauthorised_status": unauthorised_status,
    }
    checks["enforced"] = (status == 200 and patient_status == 200 and unauthorised_status == 403
                          and bool(masked_by_others) and bool(invisible_ids)
                          and not masked_by_others & {r["id"] for r in seen_by_practitioner}
                          and not invisible_ids & {r["id"] for r in seen_by_patient})
    return checks


@dataclass
class Samples:
    latencies: dict[tuple[str, str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    entries: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    # (caller, mode) -> [server CPU s, store CPU s, requests]
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0.0, 0.0]))
    errors: list[str] = field(default_factory=list)


async def one_pass(client: httpx.AsyncClient, caller: str, mode: str, batch: list[Query], tokens: Callers,
                   concurrency: int, server: Server, samples: Samples | None) -> None:
    """Every query of `batch` once, by `concurrency` workers; `samples` None for the warm-up."""
    pending = iter(batch)

    async def worker() -> None:
        for query in pending:
            headers = _headers(tokens.token(caller, query))
            started = time.perf_counter()
            response = await client.get(query.url, headers=headers)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                if samples is not None:
                    samples.errors.append(f"{caller} {query.url} -> {response.status_code}: {response.text[:200]}")
                continue
            if samples is not None:
                samples.latencies[(caller, mode, query.shape)].append(elapsed)
                samples.entries[(caller, query.shape)].append(len(orjson.loads(response.content).get("entry", [])))

    monitor = Monitor(server.front(), server.store())
    with monitor:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if samples is not None:
        totals = samples.cpu[(caller, mode)]
        totals[0] += monitor.cpu_front
        totals[1] += monitor.cpu_store
        totals[2] += len(batch)


def summary(samples: Samples, max_ratio: float, callers: tuple[str, ...]) -> dict[str, Any]:
    rows, ratios = [], []
    p50: dict[tuple[str, str, str], float] = {}
    for mode in MODES:
        for shape in (*SHAPES, ALL_SHAPES):
            for caller in callers:
                values = sorted(v for s in SHAPES if shape in (s, ALL_SHAPES) for v in samples.latencies[(caller, mode, s)])
                p50[(caller, mode, shape)] = percentile(values, 0.5) * 1000
                row = {"caller": caller, "mode": mode, "shape": shape, "requests": len(values),
                       "p50_ms": round(p50[(caller, mode, shape)], 2), "p95_ms": round(percentile(values, 0.95) * 1000, 2)}
                if shape == ALL_SHAPES:
                    server_s, store_s, count = samples.cpu[(caller, mode)]
                    row["server_cpu_ms_per_request"] = round(server_s / max(count, 1) * 1000, 3)
                    row["store_cpu_ms_per_request"] = round(store_s / max(count, 1) * 1000, 3)
                else:
                    seen = samples.entries[(caller, shape)]
                    row["mean_entries"] = round(sum(seen) / max(len(seen), 1), 2)
                rows.append(row)
            for caller in (c for c in callers if c != "platform"):
                base = p50[("platform", mode, shape)]
                ratio = round(p50[(caller, mode, shape)] / base, 3) if base else 0.0
                ratios.append({"caller": caller, "mode": mode, "shape": shape, "p50_ratio_to_platform": ratio,
                               "gated": caller == "practitioner", "met": caller != "practitioner" or ratio <= max_ratio})
    return {"rows": rows, "ratios": ratios}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = Sizes(args.patients, args.documents_per_patient, args.practitioners, args.entries_per_bundle)
    if sizes.practitioners < 3:
        raise SystemExit("--practitioners must be at least 3 (the measured one, authors, a blocked one)")
    scratch = None if args.data_dir else Path(tempfile.mkdtemp(prefix="fhir-access-bench-"))
    data_dir = args.data_dir or scratch / "data"
    started = datetime.now(timezone.utc)
    server = Server(data_dir).start()
    mongo: AsyncMongoClient[dict[str, Any]] | None = None
    try:
        mongo = AsyncMongoClient(server.store_url(), tz_aware=True)
        machine = await report.machine(mongo, server.external_store is not None)
        staff = await load(server.base_url, [_transaction([_post(f"urn:uuid:{_uuid('access-pr', n)}", practitioner(n))
                                                           for n in range(sizes.practitioners)])],
                           1, None, server.headers)
        practitioner_ids = staff.ids["Practitioner"]
        target = sizes.documents

        def progress(loaded: Loaded) -> None:
            if loaded.bundles % 10 == 0:
                rate = loaded.documents / max(time.perf_counter() - load_started, 1e-9)
                print(f"\r  loading: {loaded.documents:,}/{target:,} documents, {rate:.0f}/s", end="", flush=True)

        load_started = time.perf_counter()
        loaded = await load(server.base_url, bundles(sizes, practitioner_ids), args.load_concurrency, progress, server.headers)
        print(f"\r  loaded {loaded.documents:,} documents ({loaded.resources:,} resources) in {loaded.seconds:.0f} s: "
              f"{loaded.documents / max(loaded.seconds, 1e-9):.0f} documents/s")
        batch = queries(loaded, args.searched)
        searched = sorted({q.patient_number for q in batch})
        tokens = callers(server.data_dir, server.base_url, searched, sizes.practitioners)
        by_number = {number: pid for pid, (number, _) in loaded.patients.items()}
        samples = Samples()
        limits = httpx.Limits(max_connections=args.concurrency * 2, max_keepalive_connections=args.concurrency * 2)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120.0, limits=limits) as client:
            checks = await enforcement(client, tokens, (by_number[searched[0]], searched[0]), practitioner_ids[SEARCHER])
            print(f"  rules enforced: {checks['enforced']} ({checks})")
            for caller in args.callers:  # tokens verified, connections open, caches warm
                await one_pass(client, caller, "warm-up", batch[:WARM_UP], tokens, args.concurrency, server, None)
            # The callers take turns every few patients, not every few seconds: on shared cores the load
            # changes within seconds, and each caller must meet it as often as the others.
            step = len(SHAPES) * args.chunk
            chunks = [batch[i:i + step] for i in range(0, len(batch), step)]
            for round_number in range(args.rounds):
                for index, chunk in enumerate(chunks):
                    turn = (round_number + index) % len(args.callers)
                    order = args.callers[turn:] + args.callers[:turn]
                    for mode in MODES:
                        for caller in order:
                            await one_pass(client, caller, mode, chunk, tokens,
                                           1 if mode == "sequential" else args.concurrency, server, samples)
                print(f"  round {round_number + 1}/{args.rounds} done", flush=True)
        figures = summary(samples, args.max_ratio, args.callers)
        server.stop()
        explained = batch[:len(SHAPES) * args.explain_patients]
        figures["store_commands"] = await explain(data_dir, explained, searched, sizes.practitioners, args.callers,
                                                  args.explain_repeat) if explained else {}
        return {
            "started": started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
            "settings": {"patients": sizes.patients, "documents_per_patient": sizes.documents_per_patient,
                         "practitioners": sizes.practitioners, "searched": len(searched), "rounds": args.rounds,
                         "concurrency": args.concurrency, "chunk": args.chunk, "max_ratio": args.max_ratio, "callers": list(args.callers)},
            "machine": machine,
            "load": {"documents": loaded.documents, "resources": loaded.resources + staff.resources,
                     "seconds": round(loaded.seconds, 1),
                     "documents_per_s": round(loaded.documents / max(loaded.seconds, 1e-9), 1)},
            "enforcement": checks,
            "errors": samples.errors[:20],
            "error_count": len(samples.errors),
            **figures,
        }
    finally:
        if mongo is not None:
            await mongo.close()
        server.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def table(figures: dict[str, Any]) -> str:
    lines = ["| mode | query | caller | requests | p50 ms | p95 ms | entries/page or CPU ms/req (server + store) |",
             "|---|---|---|---|---|---|---|"]
    for row in figures["rows"]:
        extra = (f"{row['server_cpu_ms_per_request']:.2f} + {row['store_cpu_ms_per_request']:.2f}"
                 if "server_cpu_ms_per_request" in row else f"{row['mean_entries']:.1f}")
        lines.append(f"| {row['mode']} | {row['shape']} | {row['caller']} | {row['requests']} | {row['p50_ms']:.2f} | "
                     f"{row['p95_ms']:.2f} | {extra} |")
    if figures["store_commands"]:
        lines += ["", "| caller | store commands per search | in-process p50 ms | commands (per search, p50 ms) |",
                  "|---|---|---|---|"]
        for caller, seen in figures["store_commands"].items():
            listed = ", ".join(f"{c['command']} {c['collection']} ({c['per_request']:g}, {c['p50_ms']:.2f})"
                               for c in seen["commands"])
            lines.append(f"| {caller} | {seen['commands_per_request']:g} | {seen['request_p50_ms']:.2f} | {listed} |")
    lines += ["", "| mode | query | caller | p50 / platform p50 | gate |", "|---|---|---|---|---|"]
    for ratio in figures["ratios"]:
        gate = ("met" if ratio["met"] else "MISSED") if ratio["gated"] else "-"
        lines.append(f"| {ratio['mode']} | {ratio['shape']} | {ratio['caller']} | {ratio['p50_ratio_to_platform']:.3f} | {gate} |")
    return "\n".join(lines)


def verdict(figures: dict[str, Any]) -> int:
    """0: the rules hold and cost at most the allowed ratio; 1: a ratio is over; 2: rules absent or errors."""
    if figures["error_count"] or not figures["enforcement"]["enforced"]:
        return 2
    return 0 if all(r["met"] for r in figures["ratios"]) else 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _callers(text: str) -> tuple[str, ...]:
    chosen = tuple(c.strip() for c in text.split(",") if c.strip())
    if "platform" not in chosen or not set(chosen) <= set(CALLERS):
        raise argparse.ArgumentTypeError(f"a comma-separated subset of {','.join(CALLERS)} holding platform")
    return tuple(c for c in CALLERS if c in chosen)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.access_rules", description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--documents-per-patient", type=int, default=100)
    parser.add_argument("--practitioners", type=int, default=20)
    parser.add_argument("--entries-per-bundle", type=int, default=100, help="entries per loading transaction (whole patients)")
    parser.add_argument("--load-concurrency", type=int, default=4, help="transactions in flight while loading")
    parser.add_argument("--searched", type=int, default=100, help="patients whose records are searched")
    parser.add_argument("--rounds", type=_positive, default=3, help="interleaved rounds of every caller")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight in the concurrent passes")
    parser.add_argument("--chunk", type=_positive, default=4,
                        help="patients searched by one caller before the next caller's turn")
    parser.add_argument("--callers", type=_callers, default=",".join(CALLERS),
                        help="who searches, platform among them (default %(default)s)")
    parser.add_argument("--explain-patients", type=int, default=5,
                        help="patients whose searches are replayed in process to list their store commands (0: none)")
    parser.add_argument("--explain-repeat", type=_positive, default=5)
    parser.add_argument("--max-ratio", type=float, default=1.15, help="practitioner p50 / platform p50 allowed")
    parser.add_argument("--data-dir", type=Path, default=None, help="a new store directory, kept afterwards")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    figures = asyncio.run(run(args))
    print()
    print(table(figures))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"access-rules-{figures['started'].replace(':', '')}.json"
    path.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(f"\nJSON: {path}")
    code = verdict(figures)
    if figures["error_count"]:
        print(f"{figures['error_count']} searches failed, first: {figures['errors'][0]}")
    if not figures["enforcement"]["enforced"]:
        print("The access rules are not enforced by this server: the ratio measures nothing (exit 2).")
    elif code == 1:
        print(f"A practitioner/platform p50 ratio exceeds {args.max_ratio} (exit 1).")
    return code


if __name__ == "__main__":
    sys.exit(main())
