"""The single shape every check reports its findings in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "information"]


@dataclass(frozen=True)
class ValidationIssue:
    severity: Severity
    code: str  # FHIR IssueType code: required, value, code-invalid, structure, invariant, not-found...
    expression: list[str] = field(default_factory=list)
    diagnostics: str = ""

    def to_fhir(self) -> dict:
        """One OperationOutcome.issue entry."""
        out: dict = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out
