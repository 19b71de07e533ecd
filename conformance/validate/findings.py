"""Issues found by the server's own checks, as one Result's verdict and message."""

from __future__ import annotations

from conformance.model import Requirement, Result, Verdict
from fhir_server.errors import Issue

# Enough of a long list to act on; the rest is counted.
SHOWN = 20


def describe(issues: list[Issue]) -> str:
    lines = [f"{i.severity}: {_where(i)}{i.diagnostics}" for i in issues]
    more = f"\n… and {len(lines) - SHOWN} more" if len(lines) > SHOWN else ""
    return "\n".join(lines[:SHOWN]) + more


def _where(issue: Issue) -> str:
    """The issue's location, unless its words start with it already."""
    where = ", ".join(issue.expression)
    return f"{where}: " if where and not issue.diagnostics.startswith(where) else ""


def result(id_: str, title: str, tags: tuple[str, ...], requirement: Requirement, issues: list[Issue],
           passed: str) -> Result:
    """FAILED when an issue is an error; otherwise PASSED, the warnings after `passed` ("warning: ...")."""
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    warnings = [i for i in issues if i.severity == "warning"]
    if errors:
        return Result(id_, title, tags, requirement, Verdict.FAILED, describe(errors + warnings))
    return Result(id_, title, tags, requirement, Verdict.PASSED, passed + (f"\n{describe(warnings)}" if warnings else ""))
