"""The run's reports: report.json (everything), junit.xml (for CI: one testcase per case, failed
and error as failures, not declared and not run as skipped) and report.html (one page, no script:
header, summary by tag, and per case the requirement, the verdict and the deciding exchanges)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from conformance.model import Result, Verdict

FAILING = (Verdict.FAILED, Verdict.ERROR)


@dataclass
class Run:
    """What the reports are headed by, and the results."""

    target: str
    date: str
    options: dict[str, Any]
    software: dict[str, Any]  # CapabilityStatement software (name, version) and implementation
    results: list[Result]
    created: list[dict[str, Any]] = field(default_factory=list)
    run_id: str = ""

    def counts(self) -> dict[str, int]:
        counted = Counter(str(r.verdict) for r in self.results)
        return {str(v): counted.get(str(v), 0) for v in Verdict}

    def by_tag(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {}
        for result in self.results:
            for tag in result.tags:
                table.setdefault(tag, Counter())[str(result.verdict)] += 1
        return {tag: {str(v): table[tag].get(str(v), 0) for v in Verdict} for tag in sorted(table)}

    @property
    def failed(self) -> bool:
        return any(r.verdict in FAILING for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "date": self.date, "run_id": self.run_id, "options": self.options,
                "software": self.software, "summary": self.counts(), "by_tag": self.by_tag(),
                "results": [r.to_json() for r in self.results], "created": self.created}


def write_all(run: Run, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "report.json", directory / "junit.xml", directory / "report.html"]
    paths[0].write_text(json.dumps(run.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    paths[1].write_bytes(junit(run))
    paths[2].write_text(html(run), encoding="utf-8")
    return paths


def junit(run: Run) -> bytes:
    counts = run.counts()
    suite = ET.Element("testsuite", {
        "name": "fhir-conformance", "tests": str(len(run.results)),
        "failures": str(counts[Verdict.FAILED]), "errors": str(counts[Verdict.ERROR]),
        "skipped": str(counts[Verdict.NOT_DECLARED] + counts[Verdict.NOT_RUN]),
        "time": f"{sum(r.seconds for r in run.results):.3f}", "timestamp": run.date, "hostname": run.target})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("target", run.target), ("software", json.dumps(run.software)), ("run_id", run.run_id)):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for result in run.results:
        case = ET.SubElement(suite, "testcase", {"classname": result.tags[0] if result.tags else "conformance",
                                                 "name": f"{result.id} {result.title}", "time": f"{result.seconds:.3f}"})
        requirement = f"{result.requirement.label()}: {result.requirement.text}"
        if result.verdict == Verdict.FAILED:
            ET.SubElement(case, "failure", {"message": result.message}).text = requirement
        elif result.verdict == Verdict.ERROR:
            ET.SubElement(case, "error", {"message": result.message}).text = requirement
        elif result.verdict in (Verdict.NOT_DECLARED, Verdict.NOT_RUN):
            ET.SubElement(case, "skipped", {"message": f"{result.verdict}: {result.message}"})
        ET.SubElement(case, "system-out").text = requirement
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


STYLE = """body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
.passed{color:#176117}.failed,.error{color:#a30000;font-weight:bold}.not-declared,.not-run{color:#666}
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;word-break:break-all;max-height:25em;overflow:auto}
details{margin:.3em 0}section{border-top:1px solid #ddd;padding:.5em 0}"""


def _cls(verdict: Verdict) -> str:
    return str(verdict).replace(" ", "-")


def html(run: Run) -> str:
    counts = run.counts()
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>fhir-conformance report: {escape(run.target)}</title><style>{STYLE}</style></head><body>",
             f"<h1>FHIR conformance report</h1><table>",
             f"<tr><th>Server</th><td>{escape(run.target)}</td></tr>",
             f"<tr><th>Software</th><td>{escape(_software(run.software))}</td></tr>",
             f"<tr><th>Date</th><td>{escape(run.date)}</td></tr>",
             f"<tr><th>Run id</th><td>{escape(run.run_id)}</td></tr>",
             f"<tr><th>Options</th><td><code>{escape(json.dumps(run.options, ensure_ascii=False))}</code></td></tr>",
             "<tr><th>Summary</th><td>" + ", ".join(f"{n} {escape(v)}" for v, n in counts.items()) + "</td></tr></table>",
             "<h2>Summary by tag</h2><table><tr><th>Tag</th>" + "".join(f"<th>{escape(str(v))}</th>" for v in Verdict) + "</tr>"]
    for tag, row in run.by_tag().items():
        parts.append(f"<tr><td>{escape(tag)}</td>" + "".join(f"<td>{row[str(v)]}</td>" for v in Verdict) + "</tr>")
    parts.append("</table><h2>Tests</h2>")
    for result in run.results:
        parts.append(f"<section id='{escape(result.id)}'><h3>{escape(result.id)} {escape(result.title)} "
                     f"<span class='{_cls(result.verdict)}'>[{escape(str(result.verdict))}]</span></h3>"
                     f"<p><b>{escape(result.requirement.label())}</b>: “{escape(result.requirement.text)}”</p>"
                     f"<p>Tags: {escape(', '.join(result.tags))}</p>")
        if result.message:
            parts.append(f"<p class='{_cls(result.verdict)}'>{escape(result.message)}</p>")
        # A case stops at the exchange that failed it: on a failure the last one decided, and opens.
        for index, exchange in enumerate(result.exchanges):
            deciding = index == len(result.exchanges) - 1 and result.verdict in FAILING
            status = exchange.status if exchange.status is not None else exchange.error
            summary = f"{'Deciding: ' if deciding else ''}{exchange.method} {exchange.url} → {status}"
            parts.append(f"<details{' open' if deciding else ''}><summary>{escape(summary)}</summary>"
                         f"<pre>{escape(_headers(exchange.request_headers))}\n\n{escape(exchange.request_body)}</pre>"
                         f"<pre>{escape(str(status))}\n{escape(_headers(exchange.response_headers))}\n\n"
                         f"{escape(exchange.response_body)}</pre></details>")
        parts.append("</section>")
    if run.created:
        parts.append("<h2>Data the run created</h2><table><tr><th>Resource</th><th>What became of it</th></tr>")
        parts.extend(f"<tr><td>{escape(c['reference'])}</td><td>{escape(c['note'])}</td></tr>" for c in run.created)
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _software(software: dict[str, Any]) -> str:
    name = software.get("name") or "(CapabilityStatement.software absent)"
    version = software.get("version") or ""
    implementation = software.get("implementation") or ""
    return " ".join(p for p in (name, version, f"— {implementation}" if implementation else "") if p)


def _headers(headers: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers.items())


def text_summary(run: Run) -> str:
    counts = run.counts()
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no tests selected"
