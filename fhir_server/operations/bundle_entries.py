"""Parsing Bundle entries for batch and transaction: what each entry asks, in the spec's terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fhir_server.errors import FhirError
from fhir_server.search.conditional import if_none_exist_query

METHODS = ("DELETE", "POST", "PUT", "PATCH", "GET", "HEAD")


@dataclass
class Entry:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    version: str | None
    criteria: list[tuple[str, str]]
    full_url: str | None
    resource: dict[str, Any] | None
    if_match: str | None
    if_none_exist: str | None

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"

    @property
    def is_search(self) -> bool:
        """A search on a type (`Patient?...`) or across types (`?_type=...`), not a read by id."""
        return self.method in ("GET", "HEAD") and self.resource_id is None


def _relative(url: str, base: str) -> str:
    if base and url.startswith(base.rstrip("/") + "/"):
        return url[len(base.rstrip("/")) + 1:]
    if url.startswith("http://") or url.startswith("https://"):
        parts = urlsplit(url)
        path = parts.path
        marker = "/fhir/"
        path = path.split(marker, 1)[1] if marker in path else path.lstrip("/")
        return path + (f"?{parts.query}" if parts.query else "")
    return url.lstrip("/")


def parse_entry(index: int, raw: Any, base: str) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise FhirError(400, "structure", f"{where} is not an object", [where])
    request = raw.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str) or not isinstance(request.get("url"), str):
        raise FhirError(400, "required", f"{where}.request needs a method and a url", [f"{where}.request"])
    method = request["method"].upper()
    if method not in METHODS:
        raise FhirError(400, "value", f"{where}.request.method '{method}' is not supported", [f"{where}.request.method"])
    for name in ("ifMatch", "ifNoneExist"):
        if request.get(name) is not None and not isinstance(request[name], str):
            raise FhirError(400, "structure", f"{where}.request.{name} must be a string", [f"{where}.request.{name}"])
    if raw.get("fullUrl") is not None and not isinstance(raw["fullUrl"], str):
        raise FhirError(400, "structure", f"{where}.fullUrl must be a string", [f"{where}.fullUrl"])
    url = _relative(request["url"], base)
    path, _, query = url.partition("?")
    segments = [s for s in path.split("/") if s]
    # An empty path is the system level: only a search across `_type` may go there.
    if not segments and not (method in ("GET", "HEAD") and query):
        raise FhirError(400, "value", f"{where}.request.url '{request['url']}' names no resource type", [f"{where}.request.url"])
    resource_type = segments[0] if segments else ""
    resource_id = segments[1] if len(segments) > 1 else None
    version = segments[3] if len(segments) > 3 and segments[2] == "_history" else None
    resource = raw.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise FhirError(400, "required", f"{where} ({method}) carries no resource", [f"{where}.resource"])
    if method == "PATCH" and not isinstance(resource, dict):
        raise FhirError(400, "required", f"{where} (PATCH) carries no patch (a Binary holding a JSON Patch, or Parameters)",
                        [f"{where}.resource"])
    if_none_exist = request.get("ifNoneExist")
    if if_none_exist:
        if_none_exist = if_none_exist_query(if_none_exist, resource_type, f"{where}.request.ifNoneExist")
    return Entry(
        index, method, resource_type, resource_id, version,
        parse_qsl(query, keep_blank_values=True), raw.get("fullUrl"), resource,
        request.get("ifMatch"), if_none_exist,
    )


def parse_bundle(bundle: Any, base: str) -> tuple[str, list[Entry]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError(400, "structure", "POST to the base URL takes a Bundle")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise FhirError(400, "value", f"Bundle.type must be transaction or batch, not '{kind}'", ["Bundle.type"])
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError(400, "structure", "Bundle.entry must be an array", ["Bundle.entry"])
    return kind, [parse_entry(i, e, base) for i, e in enumerate(entries)]
