"""A tiny run of the export benchmark: the export and the store's raw read measured on the same
documents, figures that agree with each other. Nothing here depends on how fast the machine is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import export


def test_the_export_and_the_store_read_the_same_documents(tmp_path: Path) -> None:
    results = tmp_path / "figures.json"
    assert export.main(["--resources", "300", "--patients", "20", "--results", str(results)]) == 0
    figures = json.loads(results.read_text(encoding="utf-8"))
    # Every resource exported once, and the store read exactly those.
    assert figures["resources"] == figures["exported"] == figures["manifest_count"] == figures["store_read"] == 300
    assert figures["export_per_s"] == pytest.approx(300 / figures["export_s"], rel=0.05)
    assert figures["ratio"] == pytest.approx(figures["store_read_s"] / figures["export_s"], rel=0.05)
    assert figures["server_rss_peak_mb"] >= figures["server_rss_before_mb"] > 0
