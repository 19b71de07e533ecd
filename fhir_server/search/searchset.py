"""Searchset bundles: matches and includes, the links a client follows, self links that say what was used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fhir_server.errors import Issue, operation_outcome
from fhir_server.search.engine import SearchResult
from fhir_server.search.paging import Cursor
from fhir_server.search.request import SearchRequest
from fhir_server.storage.documents import Stored


def _escaped(value: str) -> str:
    """A value as `split_values` reads it back unchanged (FHIR R4 search.html#escaping)."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _link_params(request: SearchRequest, result: SearchResult, count: int) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = [(c.raw_name, ",".join(_escaped(v) for v in c.values)) for c in result.used]
    if request.types:
        params.append(("_type", ",".join(request.types)))
    if result.sort:
        params.append(("_sort", ",".join(("-" if d else "") + n for n, d in result.sort)))
    for inc in request.includes:
        params.append(("_include:iterate" if inc.iterate else "_include", inc.raw))
    for inc in request.revincludes:
        params.append(("_revinclude:iterate" if inc.iterate else "_revinclude", inc.raw))
    if request.total:
        params.append(("_total", request.total))
    if request.summary:
        params.append(("_summary", request.summary))
    if request.elements:
        params.append(("_elements", ",".join(request.elements)))
    params.append(("_count", str(count)))
    return params


# A match or include as it leaves the server (fhir_server.interactions.output): stored, resource, mode.
Shown = tuple[Stored, dict[str, Any], str]


def _entry(base: str, shown: Shown) -> dict[str, Any]:
    stored, resource, mode = shown
    return {"fullUrl": f"{base}/{stored.resource_type}/{stored.id}", "resource": resource, "search": {"mode": mode}}


def searchset(base: str, path: str, request: SearchRequest, result: SearchResult, shown: list[Shown], count: int,
              page_token: Callable[[Cursor], str], link_params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """`base` is the FHIR base URL, `path` the searched type (empty at system level), `shown` the
    matches then includes; `page_token` makes the `_page` value of a link (fhir_server.search.page_tokens);
    `link_params` what the links repeat when it is not the search's own parameters (an operation's)."""
    url = f"{base}/{path}" if path else base
    params = _link_params(request, result, count) if link_params is None else link_params

    def link(relation: str, cursor: Cursor | None = None) -> dict[str, str]:
        extra = [("_page", page_token(cursor))] if cursor else []
        return {"relation": relation, "url": f"{url}?{urlencode(params + extra)}"}

    links = [link("self", request.cursor)]
    if result.next:
        links.append(link("next", result.next))
    if result.previous:
        links.append(link("previous", result.previous))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    entries = [_entry(base, s) for s in shown]
    if result.ignored:
        outcome = operation_outcome([Issue("warning", "not-supported", f"Ignored search parameter '{n}'") for n in result.ignored])
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle

