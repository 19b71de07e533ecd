"""A tiny run of the benchmark harness end to end: every path measured or reported as not available,
with figures that make sense. Nothing here depends on how fast the machine is."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from benchmarks import run
from benchmarks.measure import NotAvailable
from benchmarks.scenarios import ALL
from benchmarks.scenarios.base import FRONT_SERVER, probe
from tests.server_process import ServerProcess

# Paths the server has always offered; the ingest paths may still be reported as not available.
CORE_GROUPS = {"rest", "search", "limit", "mixed"}


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    document = out / "PERFORMANCE.md"
    document.write_text("# Performance\n\nHand-written analysis.\n", encoding="utf-8")
    assert run.main(["--scales", "200", "--duration", "0.3", "--concurrency", "2", "--load-concurrency", "2",
                     "--data-dir", str(out / "data"), "--results", str(out / "results"), "--doc", str(document)]) == 0
    (path,) = (out / "results").glob("*.json")
    figures = json.loads(path.read_text(encoding="utf-8"))
    figures["document"] = document.read_text(encoding="utf-8")
    return figures


def test_every_path_is_reported_once(figures: dict[str, Any]) -> None:
    assert [r["name"] for r in figures["results"]] == [s.name for s in ALL]


def test_no_path_fails_and_core_paths_are_available(figures: dict[str, Any]) -> None:
    for result in figures["results"]:
        assert result["status"] in ("ok", "not available"), (result["name"], result["note"])
        if result["group"] in CORE_GROUPS:
            assert result["status"] == "ok", (result["name"], result["note"])


def test_measured_figures_are_sane(figures: dict[str, Any]) -> None:
    fronts = {s.name: s.front for s in ALL}
    for r in (r for r in figures["results"] if r["status"] == "ok"):
        assert r["requests"] > 0 and r["errors"] == 0, (r["name"], r["note"])
        assert r["throughput"] > 0 and r["seconds"] > 0
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"], r["name"]
        assert r["peak_rss_mb"] > 0
        assert r["store_cpu_ms_per_request"] is not None  # the embedded store is found and sampled
        if fronts[r["name"]] == FRONT_SERVER:
            assert r["cpu_ms_per_request"] > 0, r["name"]


def test_paths_are_compared_to_their_limits(figures: dict[str, Any]) -> None:
    by_name = {r["name"]: r for r in figures["results"]}
    assert set(by_name["read"]["ratios"]) == {"store", "bare"}
    assert set(by_name["search patient+type"]["ratios"]) == {"store", "bare"}
    for name in ("search patient.identifier", "search _include", "search deep page", "vread", "create"):
        assert "store" in by_name[name]["ratios"], name
    assert all(v > 0 for r in figures["results"] for v in r["ratios"].values())


def test_load_throughput_and_machine_are_recorded(figures: dict[str, Any]) -> None:
    (loaded,) = figures["loads"]
    assert loaded["documents"] == 200 and loaded["documents_per_s"] > 0
    assert figures["machine"]["nproc"] >= 1 and "nx-27017" in figures["machine"]["store"]


def test_every_target_of_issue_7_is_judged(figures: dict[str, Any]) -> None:
    names = [t["target"] for t in figures["targets"]]
    for wanted in ("read vs bare endpoint", "read: server CPU", "search patient+type: p50", "create: server CPU",
                   "ITI-65", "/ingest/cda", "MLLP", "peak memory"):
        assert any(n.startswith(wanted) for n in names), wanted
    measured = {t["target"]: t for t in figures["targets"]}
    assert measured["read vs bare endpoint"]["status"] in ("met", "missed")
    assert measured["peak memory under mixed load"]["status"] in ("met", "missed")


def test_document_keeps_hand_written_text_and_gets_the_figures(figures: dict[str, Any]) -> None:
    document = figures["document"]
    assert document.startswith("# Performance\n\nHand-written analysis.\n")
    assert "| read |" in document and "### Targets of issue 7" in document


def test_a_route_the_server_lacks_is_not_available(server: ServerProcess) -> None:
    with pytest.raises(NotAvailable):
        probe(server.post(f"{server.root_url}/ingest/no-such-path", content=b"x"), 200)
    assert probe(server.get(f"{server.base_url}/metadata"), 200).status_code == 200
