"""Running `fhir-conformance` as a tester would: a separate process, its exit status, its reports."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

@dataclass
class ToolRun:
    returncode: int
    stdout: str
    stderr: str
    report_dir: Path | None

    @property
    def report(self) -> dict[str, Any]:
        assert self.report_dir is not None
        return dict(json.loads((self.report_dir / "report.json").read_text()))

    def verdicts(self) -> dict[str, str]:
        return {r["id"]: r["verdict"] for r in self.report["results"]}

    def explain(self) -> str:
        return f"exit {self.returncode}\n{self.stdout[-4000:]}\n{self.stderr[-2000:]}"


def run_tool(*args: str, report_dir: Path | None = None, cwd: Path | None = None, timeout: float = 600,
             executable: list[str] | None = None) -> ToolRun:
    """`python -m conformance ARGS` (or `executable`), from a directory outside the project unless
    `cwd` says otherwise: the tool must not need the project's tests/."""
    command = [*(executable or [sys.executable, "-m", "conformance"]), *args]
    if report_dir is not None:
        command += ["--report", str(report_dir)]
    result = subprocess.run(command, cwd=cwd or tempfile.gettempdir(), env=dict(os.environ), capture_output=True,
                            text=True, timeout=timeout)
    return ToolRun(result.returncode, result.stdout, result.stderr, report_dir)
