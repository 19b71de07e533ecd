"""A tiny run of `python -m benchmarks.workers` end to end: each worker count served by as many
processes, measured by wrk without errors, with figures that agree with each other. Nothing here
depends on how fast the machine is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks import workers

RUN = ["--workers", "1,2", "--connections", "2,4", "--duration", "1", "--warmup", "1", "--rounds", "1",
       "--patients", "6", "--observations", "3"]


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("workers-bench")
    assert workers.main([*RUN, "--results", str(out)]) == 0
    (path,) = out.glob("workers-*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_data_set_holds_every_kind_the_mix_reads(figures: dict[str, Any]) -> None:
    by_type = figures["data"]["by_type"]
    assert by_type["Patient"] == 6 and by_type["Observation"] == 6 * 3
    assert by_type["DocumentReference"] == 6 * 10 and figures["data"]["resources"] == 6 * (24 + 3)


def test_every_worker_count_is_served_by_its_processes_without_errors(figures: dict[str, Any]) -> None:
    runs = {(r["workers"], r["connections"]): r for r in figures["runs"]}
    assert set(runs) == {(1, 2), (1, 4), (2, 2), (2, 4)}
    for (count, _), run in runs.items():
        # One process serves alone; N workers are forked under a supervising parent.
        assert run["server_processes"] == (1 if count == 1 else count + 1)
        assert run["requests"] > 0 and not any(run["errors"].values()), run
        assert run["requests_per_s"] == pytest.approx(run["requests"] / run["seconds"], rel=0.05)
        assert 0 < run["p50_ms"] <= run["p90_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert run["server_cpu_ms_per_request"] > 0 and run["store_cpu_ms_per_request"] > 0
        assert run["wrk_cpu_ms_per_request"] >= 0 and len(run["load_average"]) == 3


def test_two_workers_are_compared_with_one(figures: dict[str, Any]) -> None:
    targets = {t["target"]: t for t in figures["targets"]}
    assert set(targets) == {"2 workers / 1, throughput at 2 connections", "2 workers / 1, throughput at 4 connections",
                            "p99 at 4 connections, 2 workers vs 1"}
    rows = {(r["workers"], r["connections"]): r for r in figures["summary"]}
    ratio = targets["2 workers / 1, throughput at 4 connections"]
    assert ratio["measured"] == pytest.approx(rows[2, 4]["requests_per_s"] / rows[1, 4]["requests_per_s"], abs=0.001)
    assert ratio["met"] == (ratio["measured"] >= 0.95)
    projection = figures["projection"]
    assert projection["connections"] == 4
    assert projection["requests_per_s_per_server_core"] == round(1000 / rows[1, 4]["server_cpu_ms_per_request"])
