"""Errors a client can cause, carried as values with a FHIR shape (OperationOutcome)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_server.observability import context

# The id of the request an OperationOutcome answers (X-Request-ID), so that a client quoting the
# outcome to an operator points at the server's log lines of that request (docs/DECISIONS.md).
REQUEST_ID_EXTENSION = "https://fhir-server.example.org/StructureDefinition/request-id"


@dataclass
class Issue:
    severity: str  # fatal | error | warning | information
    code: str  # FHIR IssueType code
    diagnostics: str
    expression: list[str] = field(default_factory=list)

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class FhirError(Exception):
    """Raised anywhere in request handling; the API layer turns it into an OperationOutcome."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        expression: list[str] | None = None,
        *,
        issues: list[Issue] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.issues = issues or [Issue("error", code, diagnostics, expression or [])]

    @property
    def diagnostics(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """Every OperationOutcome the server returns is made here (with the request id, in a request)."""
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome"}
    request_id = context.current()
    if request_id is not None:
        outcome["extension"] = [{"url": REQUEST_ID_EXTENSION, "valueString": request_id}]
    outcome["issue"] = [i.to_fhir() for i in issues]
    return outcome


def information(diagnostics: str) -> dict[str, Any]:
    return operation_outcome([Issue("information", "informational", diagnostics)])


def not_found(resource_type: str, resource_id: str) -> FhirError:
    return FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")


def gone(resource_type: str, resource_id: str) -> FhirError:
    return FhirError(410, "deleted", f"{resource_type}/{resource_id} has been deleted")
