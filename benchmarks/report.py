"""Figures out: the console table, the JSON file, the targets of issue 7 and docs/PERFORMANCE.md."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks.load import Loaded
from benchmarks.measure import Result

BEGIN = "<!-- benchmarks.run: figures begin (rewritten by every run) -->"
END = "<!-- benchmarks.run: figures end -->"
SEARCHES = ("search patient+type", "search patient.identifier", "search _include", "search deep page")
GROWTH_TARGET_SCALE = 100_000


async def machine(mongo: Any, external: bool) -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    if external:
        info = await mongo.admin.command("buildInfo")
        store = f"MongoDB {info.get('version', '?')} (MONGODB_URL)"
    else:
        store = (f"embedded nx-27017 {importlib.metadata.version('nx-27017')} over SQLite "
                 f"(neosqlite {importlib.metadata.version('neosqlite')})")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "store": store,
        "commit": commit,
    }


def load_figures(scale: int, loaded: Loaded) -> dict[str, Any]:
    seconds = max(loaded.seconds, 1e-9)
    return {"scale": scale, "documents": loaded.documents, "resources": loaded.resources, "bundles": loaded.bundles,
            "seconds": round(loaded.seconds, 3), "documents_per_s": round(loaded.documents / seconds, 1),
            "resources_per_s": round(loaded.resources / seconds, 1)}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def line(r: Result) -> str:
    if r.status != "ok":
        return f"  {r.name:<32} {r.status}: {r.note[:90]}"
    return (f"  {r.name:<32} {r.throughput:>8.1f}/s  p50 {r.p50_ms:>7.2f}  p95 {r.p95_ms:>7.2f}  p99 {r.p99_ms:>7.2f} ms"
            f"  cpu {_ms(r.cpu_ms_per_request):>6}+{_ms(r.store_cpu_ms_per_request):>6} ms  {r.peak_rss_mb:>6.0f} MB"
            + (f"  ({r.errors} errors)" if r.errors else ""))


def add_ratios(results: list[Result]) -> None:
    """Each path's throughput as a fraction of its limits' throughput, at the same scale."""
    by_key = {(r.name, r.scale): r for r in results}
    for result in results:
        for kind, limit_name in result.limits.items():
            limit = by_key.get((limit_name, result.scale))
            if (result.status == "ok" and limit is not None and limit.status == "ok" and limit.throughput
                    and kind not in result.ratios):  # a paired measurement (run.paired_with_bare) stands
                result.ratios[kind] = round(result.throughput / limit.throughput, 3)


def _results(figures: dict[str, Any]) -> list[dict[str, Any]]:
    return figures["results"]


def _find(figures: dict[str, Any], name: str, scale: int | None = None) -> dict[str, Any] | None:
    found = [r for r in _results(figures) if r["name"] == name and r["status"] == "ok" and scale in (None, r["scale"])]
    return found[-1] if found else None


def _target(name: str, wanted: str, measured: str, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"target": name, "wanted": wanted, "measured": measured,
            "status": "not measured" if met is None else ("met" if met else "missed"), "note": note}


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 7, each met, missed (with the measured figure) or not measured."""
    scales = figures["settings"]["scales"]
    small, large = scales[0], scales[-1]
    out: list[dict[str, Any]] = []
    read = _find(figures, "read")
    ratio = (read or {}).get("ratios", {}).get("bare")
    out.append(_target("read vs bare endpoint", ">= 70 %", "-" if ratio is None else f"{ratio:.0%}",
                       None if ratio is None else ratio >= 0.7))
    cpu = (read or {}).get("cpu_ms_per_request")
    out.append(_target("read: server CPU per request", "<= 1 ms", "-" if cpu is None else f"{cpu:.2f} ms",
                       None if cpu is None else cpu <= 1.0, "FHIR server process; the store's CPU is listed apart"))
    at = "" if large >= GROWTH_TARGET_SCALE else f"measured at {large:,}, not {GROWTH_TARGET_SCALE:,}"
    for name in SEARCHES:
        big, base = _find(figures, name, large), _find(figures, name, small)
        if big is None:
            out.append(_target(f"{name}: p50 / p99", "<= 15 ms / <= 60 ms", "-", None))
            continue
        out.append(_target(f"{name}: p50 / p99", "<= 15 ms / <= 60 ms", f"{big['p50_ms']:.1f} / {big['p99_ms']:.1f} ms",
                           big["p50_ms"] <= 15 and big["p99_ms"] <= 60, at))
        if base is not None and large > small:
            growth = big["p50_ms"] / base["p50_ms"] if base["p50_ms"] else float("inf")
            out.append(_target(f"{name}: p50 growth {small:,} -> {large:,}", "<= 1.5x", f"{growth:.2f}x", growth <= 1.5, at))
    create = _find(figures, "create")
    cpu = (create or {}).get("cpu_ms_per_request")
    out.append(_target("create: server CPU per resource", "<= 3 ms", "-" if cpu is None else f"{cpu:.2f} ms",
                       None if cpu is None else cpu <= 3.0, "FHIR server process; the store's CPU is listed apart"))
    for name, floor in (("ITI-65 100 KB PDF", 100), ("/ingest/cda 75 KB", 300), ("MLLP MDM^T02 300 KB", 150)):
        found = _find(figures, name)
        missing = next((r for r in _results(figures) if r["name"] == name), None)
        note = "" if found else (missing or {}).get("status", "")
        out.append(_target(f"{name} throughput", f">= {floor}/s", f"{found['throughput']:.0f}/s" if found else "-",
                           None if found is None else found["throughput"] >= floor, note))
    mixed = _find(figures, "mixed load")
    out.append(_target("peak memory under mixed load", "<= 400 MB", f"{mixed['peak_rss_mb']:.0f} MB" if mixed else "-",
                       None if mixed is None else mixed["peak_rss_mb"] <= 400, "server + embedded store processes"))
    return out


# Issue 18's ingest throughput floors: three times the rates of the 2026-11-22 run (commit 52f0e21).
INGEST_BEFORE = {"/ingest/cda 75 KB": 28, "MLLP MDM^T02 300 KB": 15, "ITI-65 100 KB PDF": 55}
INGEST_CPU = {"/ingest/cda 75 KB": 5.0, "MLLP MDM^T02 300 KB": 8.0, "ITI-65 100 KB PDF": 4.0}
ROUND_TRIPS = 6


def _met(met: bool | None) -> str:
    return "not measured" if met is None else ("yes" if met else "no")


def _issue18(name: str, wanted: str, reached: str, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"target": name, "wanted": wanted, "reached": reached, "met": _met(met), "note": note}


def _paired_note(found: dict[str, Any] | None) -> str:
    rounds = (found or {}).get("paired_ratios") or []
    paired = f"median of {len(rounds)} rounds run right after the bare route ({', '.join(f'{r:.0%}' for r in rounds)})"
    return "; ".join(filter(None, [(found or {}).get("driver", ""), paired if rounds else ""]))


def _p50(found: dict[str, Any] | None) -> float:
    """A path's p50 at its scale: the median of its first run and its paired rounds."""
    if not found:
        return 0.0
    return float(statistics.median([found["p50_ms"], *(p for p, _ in found.get("paired_p50_ms") or [])]))


def targets_18(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 18 (../shared/DECISIONS.md: the absolute CPU per read is dropped, the
    bare route audits each read too), each with what this run reached and whether it is met."""
    scales = figures["settings"]["scales"]
    small, large = scales[0], scales[-1]
    out: list[dict[str, Any]] = []
    for name in ("read", "vread"):
        found = _find(figures, name)
        ratio = (found or {}).get("ratios", {}).get("bare")
        out.append(_issue18(f"{name} vs bare route (throughput)", ">= 85 %", "-" if ratio is None else f"{ratio:.0%}",
                            None if ratio is None else ratio >= 0.85, _paired_note(found)))
    at = "" if large >= GROWTH_TARGET_SCALE else f"measured at {large:,}, not {GROWTH_TARGET_SCALE:,}"
    server, bare = _find(figures, "search patient+type", large), _find(figures, "bare search patient+type", large)
    rounds = (server or {}).get("paired_p50_ms") or []
    if rounds:
        ratio = statistics.median(p / b for p, b in rounds if b)
        shown = f"{ratio:.2f}x (median of {len(rounds)} rounds run right after the bare route)"
    else:
        ratio = server["p50_ms"] / bare["p50_ms"] if server and bare and bare["p50_ms"] else None
        shown = "-" if ratio is None else f"{ratio:.2f}x ({server['p50_ms']:.1f} / {bare['p50_ms']:.1f} ms)"
    out.append(_issue18("search patient+type: p50 vs bare route", "<= 1.3x", shown,
                        None if ratio is None else ratio <= 1.3, at))
    base = _find(figures, "search patient+type", small)
    growth = _p50(server) / _p50(base) if server and base and _p50(base) and large > small else None
    out.append(_issue18(f"search patient+type: p50 growth {small:,} -> {large:,}", "<= 1.2x",
                        "-" if growth is None else f"{growth:.2f}x ({_p50(base):.1f} -> {_p50(server):.1f} ms)",
                        None if growth is None else growth <= 1.2,
                        "; ".join(filter(None, [at, "p50 at each scale: the median of the path's runs there"
                                                if server and server.get("paired_p50_ms") else ""]))))
    create = _find(figures, "create")
    cpu = (create or {}).get("cpu_ms_per_request")
    out.append(_issue18("create: server CPU", "<= 2 ms", "-" if cpu is None else f"{cpu:.2f} ms",
                        None if cpu is None else cpu <= 2.0, "validation, indexing, history and audit on"))
    ratio = (create or {}).get("ratios", {}).get("store")
    out.append(_issue18("create vs store insert (throughput)", ">= 70 %", "-" if ratio is None else f"{ratio:.0%}",
                        None if ratio is None else ratio >= 0.7))
    for name, limit in INGEST_CPU.items():
        found = _find(figures, name)
        cpu = (found or {}).get("cpu_ms_per_request")
        out.append(_issue18(f"{name}: server CPU", f"<= {limit:g} ms", "-" if cpu is None else f"{cpu:.2f} ms",
                            None if cpu is None else cpu <= limit))
    # One at a time, and as many in flight as the throughput runs keep (their transactions share commits).
    alone = {row["path"]: row for row in figures.get("round_trips", []) if row.get("in_flight", 1) == 1}
    together = {row["path"]: row for row in figures.get("round_trips", []) if row.get("in_flight", 1) > 1}
    for name in INGEST_CPU:
        row = together.get(name) or alone.get(name)
        single = alone.get(name)
        note = "" if row is None else (
            f"{row.get('in_flight', 1)} in flight: request {row['request']:g} + store group commit "
            f"{row.get('store_group_commit', 0):g} + audit {row['audit_group_commit']:g}"
            + ("" if single is None or single is row else f"; one at a time {single['per_document']:g}"))
        out.append(_issue18(f"{name}: store round trips per document", f"<= {ROUND_TRIPS}",
                            "-" if row is None else f"{row['per_document']:g}",
                            None if row is None else row["per_document"] <= ROUND_TRIPS, note))
    for name, before in INGEST_BEFORE.items():
        found = _find(figures, name)
        out.append(_issue18(f"{name}: throughput", f">= {3 * before}/s (3 x {before})",
                            "-" if found is None else f"{found['throughput']:.0f}/s",
                            None if found is None else found["throughput"] >= 3 * before))
    mixed = _find(figures, "mixed load")
    out.append(_issue18("peak memory under mixed load", "<= 300 MB", f"{mixed['peak_rss_mb']:.0f} MB" if mixed else "-",
                        None if mixed is None else mixed["peak_rss_mb"] <= 300, "server + embedded store processes"))
    return out


def _row(r: dict[str, Any]) -> list[str]:
    ratios = ", ".join(f"{k} {v:.0%}" for k, v in r["ratios"].items()) or "-"
    if r["status"] != "ok":
        return [r["name"], f"{r['scale']:,}", r["status"], "", "", "", "", "", "", (r["note"] or "")[:80]]
    return [r["name"], f"{r['scale']:,}", f"{r['throughput']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}",
            f"{r['p99_ms']:.2f}", _ms(r["cpu_ms_per_request"]), _ms(r["store_cpu_ms_per_request"]),
            f"{r['peak_rss_mb']:.0f}", ratios + (f"; {r['errors']} errors" if r["errors"] else "")]


HEADER = ["path", "documents", "req/s", "p50 ms", "p95 ms", "p99 ms", "CPU ms/req", "store CPU ms/req", "peak MB",
          "vs limit (throughput)"]


def table(figures: dict[str, Any]) -> str:
    rows = [HEADER, *(_row(r) for r in _results(figures))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    lines += [f"target {t['target']}: {t['status']} ({t['measured']}; wanted {t['wanted']})" for t in figures["targets"]]
    lines += ["", "Targets of issue 18:"]
    rows = [["target", "wanted", "reached", "met"],
            *([t["target"], t["wanted"], t["reached"], t["met"]] for t in figures.get("targets_18", []))]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def write_json(figures: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(figures["started"]).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _markdown(rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0]),
            *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows[1:])]


def figures_markdown(figures: dict[str, Any]) -> str:
    m, s = figures["machine"], figures["settings"]
    out = [
        f"## Latest figures ({figures['started']}, commit {m['commit']})",
        "",
        f"- Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gb']} GB memory, Python {m['python']}; "
        f"load average {m['load_average_at_start']} at start (the machine is shared with other work, "
        "and the load generator runs on the same cores).",
        f"- Store: {m['store']}.",
        f"- Settings: scales {', '.join(f'{x:,}' for x in s['scales'])} DocumentReferences; {s['duration']} s and "
        f"{s['concurrency']} requests in flight per path (asyncio + httpx)"
        + (f", the GET paths driven by wrk instead (1 thread, {s['connections']} connections)" if s.get("driver") == "wrk" else "")
        + f"; loading with {s['load_concurrency']} bundles in flight"
        + (f"; ratios to the bare route: the median of {s['pairs']} rounds, each run right after the bare route"
           if s.get("pairs") else "")
        + f". Whole run: {figures['seconds'] / 60:.1f} min.",
        "",
        "### Loading (transaction bundles of about 100 entries through `POST /fhir`)",
        "",
        *_markdown([["up to", "documents", "resources", "seconds", "documents/s", "resources/s",
                     "outbox: waited s, events left when measuring"],
                    *([f"{x['scale']:,}", f"{x['documents']:,}", f"{x['resources']:,}", f"{x['seconds']}",
                       f"{x['documents_per_s']}", f"{x['resources_per_s']}",
                       f"{x.get('outbox_wait_s', '-')}, {x.get('outbox_left', '-')}"] for x in figures["loads"])]),
        "",
        "### Paths",
        "",
        *_markdown([HEADER, *(_row(r) for r in _results(figures))]),
        "",
        "### Round trips per ingested document",
        "",
        *_markdown([["path", "documents", "in flight", "per document", "sent by the request",
                     "store group commits", "audit group commits", "background afterwards", "commands of the request"],
                    *([r["path"], str(r["documents"]), str(r.get("in_flight", 1)), f"{r['per_document']:g}",
                       f"{r['request']:g}", f"{r.get('store_group_commit', 0):g}",
                       f"{r['audit_group_commit']:g}", f"{r['background']:g}",
                       ", ".join(f"{k} {v:g}" for k, v in r["commands"].items())]
                      for r in figures.get("round_trips", []))]),
        "",
        "### Targets of issue 18",
        "",
        *_markdown([["target", "wanted", "reached", "met", "note"],
                    *([t["target"], t["wanted"], t["reached"], t["met"], t["note"]]
                      for t in figures.get("targets_18", []))]),
        "",
        "### Targets of issue 7",
        "",
        *_markdown([["target", "wanted", "measured", "status", "note"],
                    *([t["target"], t["wanted"], t["measured"], t["status"], t["note"]] for t in figures["targets"])]),
    ]
    return "\n".join(out) + "\n"


def write_document(figures: dict[str, Any], path: Path) -> None:
    """Replace the generated section of the document, keeping the hand-written text around it."""
    generated = f"{BEGIN}\n{figures_markdown(figures)}{END}"
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + generated + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
