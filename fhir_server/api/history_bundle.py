"""History bundles for instance, type and system history, newest first, with `_since` and paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.responses import base_url, fhir_response
from fhir_server.search.filters.date import parse_value
from fhir_server.search.page_tokens import PageTokens, history_scope
from fhir_server.search.paging import Cursor, foreign_page
from fhir_server.search.request import parse_count

METHOD_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def _count(request: Request) -> int:
    raw = request.query_params.get("_count")
    # At least one entry: the next page starts before the last entry shown.
    return max(1, request.app.state.settings.page_size(None if raw is None else parse_count(raw)))


def _before(token: str, tokens: PageTokens, scope: bytes) -> str:
    """The history key a `_page` token of this history starts before."""
    values = tokens.open(token, scope).values
    if len(values) != 1 or not isinstance(values[0], str):
        raise foreign_page()
    return values[0]


async def history_response(request: Request, query: dict[str, Any]) -> Response:
    repo = request.app.state.repository
    tokens: PageTokens = request.app.state.page_tokens
    count = _count(request)
    condition = dict(query)
    since = request.query_params.get("_since")
    if since:
        _, lo, _ = parse_value(since)
        condition["ts"] = {"$gte": lo}
    scope = history_scope(request.url.path, since, count)
    page = request.query_params.get("_page")
    entries = await repo.history_page(condition, count, _before(page, tokens, scope) if page is not None else None)
    has_next = len(entries) > count
    entries = entries[:count]
    base = base_url(request)
    # Links on the public base (FHIR_BASE_URL when set), like every other URL the server gives out.
    url = base + str(request.url.path).removeprefix("/fhir")
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "_page"]
    links = [{"relation": "self", "url": url + (f"?{urlencode(params)}" if params else "")}]
    if has_next and entries:
        token = tokens.issue(Cursor(True, [entries[-1].key]), scope)
        links.append({"relation": "next", "url": f"{url}?{urlencode([*params, ('_page', token)])}"})
    bundle_entries = []
    for entry in entries:
        stored = entry.stored
        url = f"{stored.resource_type}/{stored.id}"
        item: dict[str, Any] = {
            "fullUrl": f"{base}/{url}",
            "request": {"method": entry.method, "url": url if entry.method != "POST" else stored.resource_type},
            "response": {"status": METHOD_STATUS.get(entry.method, "200 OK"), "etag": f'W/"{stored.version}"',
                         "lastModified": stored.last_updated},
        }
        if stored.resource is not None:
            resource = stored.resource
            if stored.resource_type == "Binary":
                resource = await repo.with_binary_data(stored)
            item["resource"] = resource
        bundle_entries.append(item)
    bundle = {"resourceType": "Bundle", "type": "history", "link": links, "entry": bundle_entries}
    return fhir_response(request, bundle)
