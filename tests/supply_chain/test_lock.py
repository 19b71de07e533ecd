"""The supply chain: every dependency `make` installs is pinned with hashes in requirements.lock,
and the pip-audit gate of `make audit` (.ci/fixable_vulnerabilities.py) fails on a known
vulnerability that has a fix and on nothing else."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / ".ci" / "fixable_vulnerabilities.py"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, list[str]]:
    """Each pinned package of the lock with its hashes."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pins: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if match:
            pins[_normal(match.group(1))] = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
    return pins


def test_every_dependency_and_extra_is_pinned_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    pins = _pins()
    names = {_normal(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]) for requirement in wanted}
    assert names - set(pins) == set(), "make lock after changing pyproject.toml's dependencies"
    assert [name for name, hashes in pins.items() if not hashes] == []
    # What make installs the project with (setuptools, --no-build-isolation) is pinned too.
    assert "setuptools" in pins and "pip-audit" in pins


def report(*dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(dependencies), "fixes": []}


def gate(tmp_path: Path, audit: dict[str, Any], strict: bool = False) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pip-audit.json"
    path.write_text(json.dumps(audit), encoding="utf-8")
    return subprocess.run([sys.executable, str(GATE), str(path)], capture_output=True, text=True, timeout=60,
                          env={"FHIR_AUDIT_STRICT": "1"} if strict else {})


CLEAN = {"name": "pyjwt", "version": "2.15.1", "vulns": []}
FIXABLE = {"name": "jinja2", "version": "2.4.1", "vulns": [
    {"id": "PYSEC-2014-8", "fix_versions": ["2.7.2"], "aliases": ["CVE-2014-1402"], "description": "..."}]}
UNFIXED = {"name": "somepkg", "version": "1.0", "vulns": [{"id": "GHSA-xxxx-xxxx-xxxx", "fix_versions": []}]}
SKIPPED = {"name": "private-pkg", "skip_reason": "Dependency not found on PyPI and could not be audited: private-pkg (1.0)"}


@pytest.mark.parametrize(("audit", "strict", "status", "says"), [
    (report(CLEAN, FIXABLE), False, 1, "PYSEC-2014-8 fixed in 2.7.2"),
    (report(CLEAN, UNFIXED), False, 0, "no fixed version yet"),
    (report(CLEAN), False, 0, "no known vulnerability with a fix in 1 pinned packages"),
    (report(CLEAN, SKIPPED), False, 0, "could not audit 1 of 2"),
    (report(CLEAN, SKIPPED), True, 1, "could not audit 1 of 2"),
    (report(), False, 1, ""),
])
def test_the_audit_fails_on_a_vulnerability_with_a_fix_only(tmp_path: Path, audit: dict[str, Any], strict: bool,
                                                            status: int, says: str) -> None:
    result = gate(tmp_path, audit, strict)
    assert result.returncode == status, result.stdout + result.stderr
    assert says in result.stdout + result.stderr


def test_no_report_fails(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(GATE), str(tmp_path / "missing.json")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "pip-audit did not run" in result.stderr
