"""What a conformance run produces: one Result per test case, each tied to the requirement it checks
and carrying the requests and responses that decided its verdict. The reports (HTML, JUnit, JSON)
and the offline validator (`fhir-conformance validate`) all speak this model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

# Bodies kept in a report: enough to see what decided a verdict, not whole documents.
BODY_LIMIT = 4000


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # An optional feature the CapabilityStatement does not declare: not a failure.
    NOT_DECLARED = "not declared"
    # The test needs something the tester did not give (a role token, --mllp, --large).
    NOT_RUN = "not run"
    # The test could not reach a verdict (connection refused, timeout): counted like a failure.
    ERROR = "error"


@dataclass(frozen=True)
class Requirement:
    """The requirement a test checks: the specification, its section, and the requirement's words."""

    spec: str  # e.g. "FHIR-R4", "IHE-ITI-65", "ANS-PDSm", "CSP", "HL7v2.5"
    section: str  # e.g. "http.html#transaction", "3.65.4.1.3", "R.1111-49"
    text: str  # the requirement's words, quoted from the source

    def label(self) -> str:
        return f"{self.spec} {self.section}"


@dataclass
class Exchange:
    """One request and its response (or the error that stood for a response), bodies trimmed."""

    method: str
    url: str
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str = ""
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str = ""


@dataclass
class Result:
    id: str  # stable, e.g. "FHIR-read-01"
    title: str
    tags: tuple[str, ...]
    requirement: Requirement
    verdict: Verdict
    message: str = ""  # why: what was expected and what was seen
    exchanges: list[Exchange] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        data["verdict"] = str(self.verdict)
        return data


def trim(text: str, limit: int = BODY_LIMIT) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more characters]"
