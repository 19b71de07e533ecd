"""History bundles for instance, type and system history, newest first, with `_since` and paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.responses import base_url, fhir_response
from fhir_server.search.filters.date import parse_value
from fhir_server.search.request import parse_count

METHOD_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def _count(request: Request) -> int:
    raw = request.query_params.get("_count")
    # At least one entry: the next page starts before the last entry shown.
    return max(1, request.app.state.settings.page_size(None if raw is None else parse_count(raw)))


async def history_response(request: Request, query: dict[str, Any]) -> Response:
    repo = request.app.state.repository
    count = _count(request)
    condition = dict(query)
    since = request.query_params.get("_since")
    if since:
        _, lo, _ = parse_value(since)
        condition["ts"] = {"$gte": lo}
    before = request.query_params.get("_page")
    entries = await repo.history_page(condition, count, before)
    has_next = len(entries) > count
    entries = entries[:count]
    base = base_url(request)
    # Links on the public base (FHIR_BASE_URL when set), like every other URL the server gives out.
    url = base + str(request.url.path).removeprefix("/fhir")
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "_page"]
    links = [{"relation": "self", "url": url + (f"?{urlencode(params)}" if params else "")}]
    if has_next and entries:
        links.append({"relation": "next", "url": f"{url}?{urlencode([*params, ('_page', entries[-1].key)])}"})
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
