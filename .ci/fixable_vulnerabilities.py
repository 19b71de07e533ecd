"""The pip-audit gate: fails on a known vulnerability of a pinned version that has a fix.

pip-audit exits 1 on any vulnerability, with a fix or not; a vulnerability nobody has fixed yet
cannot be acted on by upgrading, so it is shown and does not fail the build (docs/SECURITY.md,
"Supply chain"). Reads pip-audit's JSON report (`--format json`).

Packages pip-audit could not look up (the advisory service unreachable) are counted and named;
they fail the build only with FHIR_AUDIT_STRICT=1, since a machine whose registry mirror lacks
PyPI's per-version JSON API could otherwise never build.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def verdict(report: dict[str, Any], strict: bool) -> tuple[int, list[str]]:
    """The exit status and the lines to print for one pip-audit JSON report."""
    lines: list[str] = []
    fixable = 0
    dependencies = report.get("dependencies") or []
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dependency in dependencies:
        for vulnerability in dependency.get("vulns") or []:
            fixes = vulnerability.get("fix_versions") or []
            fixable += bool(fixes)
            lines.append(f"{dependency['name']}=={dependency.get('version')}: {vulnerability.get('id')} "
                         + (f"fixed in {', '.join(fixes)}: upgrade the pin (make lock)" if fixes
                            else "no fixed version yet (not failing)"))
    if skipped:
        lines.append(f"pip-audit could not audit {len(skipped)} of {len(dependencies)} pinned packages, e.g. "
                     f"{skipped[0]['skip_reason']}" + ("" if strict else " (not failing; FHIR_AUDIT_STRICT=1 fails)"))
    if fixable:
        lines.append(f"{fixable} known vulnerabilities have a fix")
    elif dependencies and not skipped:
        lines.append(f"no known vulnerability with a fix in {len(dependencies)} pinned packages")
    failed = fixable > 0 or not dependencies or (strict and bool(skipped))
    return (1 if failed else 0), lines


def main(argv: list[str]) -> int:
    path = Path(argv[1])
    if not path.exists():
        print(f"no pip-audit report at {path}: pip-audit did not run", file=sys.stderr)
        return 1
    status, lines = verdict(json.loads(path.read_text(encoding="utf-8")), os.environ.get("FHIR_AUDIT_STRICT") == "1")
    print("\n".join(lines), file=sys.stderr if status else sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
