"""The official R4 examples stored once per session: every one (`make test-all`) or one per type."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.r4_examples import Example, Unavailable, load_all, select

# The examples the server refuses, and why: those R4 itself refuses (400; the count is in the issue's
# note), and those a rule of the record refuses (422).
_NO_BASE = "SearchParameter.base is required (1..*) and absent: the extension packs' parameters name no base"
_NOT_A_PDF = "attachment declared application/pdf whose bytes do not start with the PDF signature"
INVALID = {
    "ImplementationGuide-fhir.json": "ImplementationGuide.name and ImplementationGuide.status are required (1..1)",
    "ig-r4.json": "ImplementationGuide.name and ImplementationGuide.status are required (1..1)",
    "Questionnaire-qs1.json": "Questionnaire.item.linkId is required (1..1) and the nested items have none",
    "SearchParameter-codesystem-extensions-CodeSystem-author.json": _NO_BASE,
    "SearchParameter-codesystem-extensions-CodeSystem-effective.json": _NO_BASE,
    "SearchParameter-codesystem-extensions-CodeSystem-end.json": _NO_BASE,
    "SearchParameter-codesystem-extensions-CodeSystem-keyword.json": _NO_BASE,
    "SearchParameter-codesystem-extensions-CodeSystem-workflow.json": _NO_BASE,
    "SearchParameter-valueset-extensions-ValueSet-author.json": _NO_BASE,
    "SearchParameter-valueset-extensions-ValueSet-effective.json": _NO_BASE,
    "SearchParameter-valueset-extensions-ValueSet-end.json": _NO_BASE,
    "SearchParameter-valueset-extensions-ValueSet-keyword.json": _NO_BASE,
    "SearchParameter-valueset-extensions-ValueSet-workflow.json": _NO_BASE,
    "SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json":
        "its id has 67 characters; an R4 id has at most 64",
    # Valid R4, refused by this server's own rule (docs/DECISIONS.md, file signatures): the bytes
    # these examples declare as a PDF are placeholders, not a PDF.
    "Communication-fm-attachment.json": _NOT_A_PDF,
    "Communication-fm-solicited.json": _NOT_A_PDF,
    "DiagnosticReport-example-pgx.json": _NOT_A_PDF,
    "DocumentManifest-654789.json": _NOT_A_PDF,
}
# The element each refusal names (OperationOutcome.issue.expression).
INVALID_AT = {
    "ImplementationGuide-fhir.json": "ImplementationGuide.name",
    "ig-r4.json": "ImplementationGuide.name",
    "Questionnaire-qs1.json": "Questionnaire.item[0].item[0].linkId",
    "SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json": "id",
    "Communication-fm-attachment.json": "Communication.payload[0].contentAttachment.data",
    "Communication-fm-solicited.json": "Communication.payload[0].contentAttachment.data",
    "DiagnosticReport-example-pgx.json": "DiagnosticReport.presentedForm[0].data",
    "DocumentManifest-654789.json": "DocumentManifest.contained[1].content[0].attachment.data",
}
# R4 refuses its invalid examples with 400; the server's own content rules answer 422.
REFUSED_WITH = {file: 422 for file, reason in INVALID.items() if reason == _NOT_A_PDF}
SERVER_META = ("versionId", "lastUpdated")
WORKERS = 4


@dataclass
class Stored:
    """One example as sent, and what the server answered to its write, its read and its `_id` search."""

    example: Example
    sent: dict[str, Any]
    status: int
    id: str | None
    outcome: str  # the write's error, if any
    read_back: dict[str, Any] | None = None  # the resource read back, without server meta, when it differs
    read_status: int = 0
    found_by_id: list[str] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.example.type, str(self.id)


def as_sent(example: Example) -> dict[str, Any]:
    """What the test sends: the example, a Subscription switched off (its endpoints are public hosts)."""
    if example.type == "Subscription":
        return {**example.resource, "status": "off"}
    return example.resource


def without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    out = dict(resource)
    meta = {k: v for k, v in (out.pop("meta", None) or {}).items() if k not in SERVER_META}
    if meta:
        out["meta"] = meta
    if out.get("resourceType") == "Binary" and isinstance(out.get("data"), str):
        # R4 base64Binary may hold whitespace between groups; the bytes are what is stored.
        out["data"] = base64.b64decode("".join(out["data"].split()))
    return out


@pytest.fixture(scope="session")
def all_examples() -> list[Example]:
    try:
        return load_all()
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def selected(all_examples: list[Example]) -> list[Example]:
    return select(all_examples, INVALID)


def _store(fhir: httpx.Client, example: Example) -> Stored:
    sent = as_sent(example)
    if example.type == "AuditEvent":
        # Clients create audit records; nobody updates them (docs/DECISIONS.md).
        response = fhir.post("/AuditEvent", json={k: v for k, v in sent.items() if k != "id"})
        rid = response.headers.get("location", "").split("/_history")[0].rsplit("/", 1)[-1] or None
    else:
        response = fhir.put(f"/{example.type}/{example.id}", json=sent)
        rid = example.id
    ok = response.status_code in (200, 201)
    outcome = Stored(example, sent, response.status_code, rid, "" if ok else response.text[:500])
    if not ok:
        return outcome
    read = fhir.get(f"/{example.type}/{rid}")
    outcome.read_status = read.status_code
    expected = without_server_meta({**sent, "id": rid})
    back = without_server_meta(read.json())
    outcome.read_back = None if back == expected else back
    search = fhir.get(f"/{example.type}", params={"_id": rid, "_elements": "id"}, headers={"Prefer": "handling=strict"})
    outcome.found_by_id = [e["resource"]["id"] for e in search.json().get("entry", []) if e["search"]["mode"] == "match"]
    return outcome


@pytest.fixture(scope="session")
def stored(fhir: httpx.Client, selected: list[Example]) -> dict[str, Stored]:
    """Every selected example written once, read back and searched by `_id`; the big ones first so
    the pool stays busy."""
    order = sorted(selected, key=lambda e: -e.size)
    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(lambda e: _store(fhir, e), order))
    return {outcome.example.file: outcome for outcome in outcomes}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per selected example / per type, named after it; none when the package is unavailable."""
    if not {"example_file", "example_type", "invalid_file"} & set(metafunc.fixturenames):
        return
    try:
        examples = load_all()
    except Unavailable:
        examples = []
    if "example_file" in metafunc.fixturenames:
        names = [e.file for e in select(examples, INVALID)]
        metafunc.parametrize("example_file", names or ["(R4 examples unavailable)"])
    if "example_type" in metafunc.fixturenames:
        types = sorted({e.type for e in select(examples, INVALID)})
        metafunc.parametrize("example_type", types or ["(R4 examples unavailable)"])
    if "invalid_file" in metafunc.fixturenames:
        loaded = {e.file for e in examples}
        names = [n for n in INVALID if n in loaded]
        metafunc.parametrize("invalid_file", names or ["(R4 examples unavailable)"])


@pytest.fixture
def stored_types(stored: dict[str, Stored]) -> Iterator[dict[str, list[Stored]]]:
    types: dict[str, list[Stored]] = {}
    for outcome in stored.values():
        types.setdefault(outcome.example.type, []).append(outcome)
    yield types
