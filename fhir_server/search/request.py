"""A search request split into what selects resources and what shapes the result (FHIR R4 search.html)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server.errors import FhirError
from fhir_server.search.paging import Cursor

RESULT_PARAMETERS = {
    "_count", "_sort", "_include", "_revinclude", "_total", "_summary", "_elements",
    "_format", "_pretty", "_page", "_type",
}
# Accepted and ignored by every FHIR server that does not implement them; never an error.
IGNORED_PARAMETERS = {"_format", "_pretty"}


@dataclass
class Criterion:
    """One `name[:modifier][.chain]=v1,v2` parameter: its values are ORed."""

    raw_name: str
    name: str
    modifier: str | None
    chain: str | None
    values: list[str]


@dataclass
class Include:
    source: str
    param: str
    target: str | None
    iterate: bool
    raw: str


@dataclass
class SearchRequest:
    criteria: list[Criterion] = field(default_factory=list)
    count: int | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param, descending)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    total: str | None = None
    summary: str | None = None
    elements: list[str] = field(default_factory=list)
    page: str | None = None  # `_page` as sent
    # The page `page` names, once checked against this search (fhir_server.interactions.search).
    cursor: Cursor | None = None
    types: list[str] = field(default_factory=list)
    # A Patient compartment search (`/Patient/{id}/{type}`): that patient's id.
    compartment: str | None = None
    # Result parameters that could not be read, with why: an error under `handling=strict`,
    # ignored (and left out of the self link) otherwise. Only the engine knows which applies.
    invalid: list[tuple[str, FhirError]] = field(default_factory=list)


def split_values(value: str) -> list[str]:
    """Split on commas that are not escaped with a backslash; unescape `\\,` `\\|` `\\$` `\\\\`."""
    values: list[str] = []
    current: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            current.append(char if char in ",$|\\" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    values.append("".join(current))
    return values


def parse_criterion(raw_name: str, value: str) -> Criterion:
    if raw_name.startswith("_has:"):
        return Criterion(raw_name, "_has", None, raw_name[len("_has:"):], split_values(value))
    head, _, chain = raw_name.partition(".")
    name, _, modifier = head.partition(":")
    return Criterion(raw_name, name, modifier or None, chain or None, split_values(value))


def _include(raw: str, iterate: bool) -> Include:
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise FhirError(400, "invalid", f"_include/_revinclude '{raw}' is not Type:param[:TargetType]")
    return Include(parts[0], parts[1], parts[2] if len(parts) == 3 else None, iterate, raw)


def parse_count(value: str) -> int:
    """`_count` as sent, for searches and history alike; the server's limits apply afterwards."""
    if not (value.isascii() and value.isdigit()):
        raise FhirError(400, "invalid", f"_count must be a non-negative integer, got '{value}'", ["_count"])
    return int(value)


def _result_parameter(request: SearchRequest, base: str, modifier: str, value: str) -> None:
    if base == "_count":
        request.count = parse_count(value)
    elif base == "_sort":
        for key in value.split(","):
            key = key.strip()
            if key:
                request.sort.append((key.lstrip("-"), key.startswith("-")))
    elif base in ("_include", "_revinclude"):
        if modifier not in ("", "iterate", "recurse"):
            raise FhirError(400, "invalid", f"Unknown modifier '{modifier}' on {base}")
        target = request.includes if base == "_include" else request.revincludes
        target.append(_include(value, modifier != ""))
    elif base == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise FhirError(400, "invalid", "_total must be none, estimate or accurate")
        request.total = value
    elif base == "_summary":
        if value not in ("true", "false", "count", "data", "text"):
            raise FhirError(400, "invalid", "_summary must be true, false, count, data or text")
        request.summary = value
    elif base == "_elements":
        request.elements += [e.strip() for e in value.split(",") if e.strip()]
    elif base == "_page":
        request.page = value
    elif base == "_type":
        request.types += [t for t in value.split(",") if t]


def parse_request(params: list[tuple[str, str]]) -> SearchRequest:
    request = SearchRequest()
    for name, value in params:
        if name in IGNORED_PARAMETERS:
            continue
        base, _, modifier = name.partition(":")
        if base in RESULT_PARAMETERS:
            try:
                _result_parameter(request, base, modifier, value)
            except FhirError as exc:
                request.invalid.append((name, exc))
        else:
            request.criteria.append(parse_criterion(name, value))
    return request
