"""The conformance runner drives the suites against a server given by URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_runner_passes_against_our_server(server) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("FHIR_SERVER_URL", "FHIR_SERVER_TOKEN")}
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "--base-url", server.base_url, "--token", server.token, "--suite", "core", "-q",
         "-k", "capabilities or crud"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_runner_reports_failures_against_a_server_that_is_not_fhir(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "--base-url", "http://127.0.0.1:9/fhir", "--suite", "core", "-q",
         "-k", "test_metadata", "-x"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
