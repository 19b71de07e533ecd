"""fhir-conformance installed from the project's wheel into a fresh venv, run from outside the
project, against the session's server. Slow (a venv with every dependency): `make test-all` sets
FHIR_TEST_WHEEL=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.tool import run_tool
from tests.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.environ.get("FHIR_TEST_WHEEL") != "1", reason="FHIR_TEST_WHEEL=1 (make test-all)")


def test_the_tool_from_the_wheel_lists_and_runs_against_a_server(server: ServerProcess, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(ROOT)], check=True, capture_output=True, timeout=600)
    (wheel,) = wheels.glob("fhir_server-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], capture_output=True,
                               text=True, timeout=1200)
    assert installed.returncode == 0, installed.stderr[-3000:]
    tool = [str(venv / "bin" / "fhir-conformance")]
    listed = run_tool("--list", executable=tool, cwd=tmp_path)
    assert listed.returncode == 0 and "FHIR-transaction-02" in listed.stdout, listed.explain()
    run = run_tool("--base-url", server.base_url, "--token", server.token, "--select", "FHIR-read,FHIR-create-01,ITI-65,large",
                   "--large", executable=tool, cwd=tmp_path, report_dir=tmp_path / "report")
    assert run.returncode == 0, run.explain()
    assert set(run.verdicts().values()) == {"passed"} and len(run.verdicts()) >= 8
    assert run.verdicts()["FHIR-create-04"] == "passed"
    as_module = subprocess.run([str(venv / "bin" / "python"), "-m", "conformance", "--list", "--select", "HL7v2"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert as_module.returncode == 0 and "HL7V2-01" in as_module.stdout, as_module.stderr
