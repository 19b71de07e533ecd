"""A tiny run of the reimbursement import benchmark: both sides measured on the same documents,
figures that agree with each other. Nothing here depends on how fast the machine is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import reimbursements


def test_the_import_and_the_store_are_measured_on_the_same_documents(tmp_path: Path) -> None:
    results = tmp_path / "figures.json"
    assert reimbursements.main(["--patients", "4", "--claims", "40", "--rounds", "2", "--min-ratio", "0",
                                "--results", str(results)]) == 0
    figures = json.loads(results.read_text(encoding="utf-8"))
    assert len(figures["rounds"]) == 2
    for r in figures["rounds"]:
        # Every line was stored, and the store was given exactly what the import stored.
        assert r["resources"] == 40
        assert r["import_per_s"] == pytest.approx(r["resources"] / r["import_s"], rel=0.05)
        assert r["store_per_s"] == pytest.approx(r["resources"] / r["store_s"], rel=0.05)
        assert r["ratio"] == pytest.approx(r["store_s"] / r["import_s"], rel=0.05)
    assert figures["ratio"] > 0
