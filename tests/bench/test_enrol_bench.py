"""A tiny run of the enrolment benchmark: the command and the store measured on the same
documents, figures that agree with each other. Nothing here depends on how fast the machine is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import enrol


def test_enrolment_and_the_store_are_measured_on_the_same_documents(tmp_path: Path) -> None:
    results = tmp_path / "figures.json"
    assert enrol.main(["--scales", "40", "--batch", "15", "--min-ratio", "0", "--results", str(results)]) == 0
    [figures] = json.loads(results.read_text(encoding="utf-8"))["scales"]
    # Every person enrolled, with one notice each; the store was given what enrolment stored.
    assert figures["persons"] == 40 and figures["documents"]["Patient"] == 40
    assert figures["documents"]["RelatedPerson"] == 4
    assert figures["notices"]["email"] + figures["notices"]["postal"] == 40
    assert figures["documents"]["mail_queue"] == figures["notices"]["email"]
    assert figures["documents"]["postal_notices"] == figures["notices"]["postal"]
    assert figures["enrol_per_s"] == pytest.approx(40 / figures["enrol_s"], rel=0.05)
    assert figures["ratio"] == pytest.approx(figures["store_s"] / figures["enrol_s"], rel=0.05)
    assert figures["peak_rss_mb"] > 0
