"""The history interaction (FHIR R4 http.html#history) for an instance, a type or the whole
server: newest first, with `_since`, `_count` and signed `_page` tokens. Entries hidden from the
caller are left out by the store query itself (the search-filter hook), so pages never show gaps."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fhir_server.config import Settings
from fhir_server.interactions.output import outgoing
from fhir_server.search.filters.date import parse_value
from fhir_server.search.page_tokens import PageTokens, history_scope
from fhir_server.search.paging import Cursor, foreign_page
from fhir_server.search.request import parse_count
from fhir_server.security.callers import Caller
from fhir_server.storage.repository import Repository

METHOD_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def _before(token: str, tokens: PageTokens, scope: bytes) -> str:
    """The history key a `_page` token of this history starts before."""
    values = tokens.open(token, scope).values
    if len(values) != 1 or not isinstance(values[0], str):
        raise foreign_page()
    return values[0]


class HistoryInteraction:
    def __init__(self, repository: Repository, tokens: PageTokens, settings: Settings) -> None:
        self.repository = repository
        self.tokens = tokens
        self.settings = settings

    async def history(self, caller: Caller, resource_type: str | None, resource_id: str | None,
                      params: list[tuple[str, str]], *, base_url: str) -> dict[str, Any]:
        """The history Bundle; `base_url` is the public FHIR base its links are written on."""
        if resource_type is not None:
            self.repository.check_type(resource_type)
        query: dict[str, Any] = {}
        if resource_id is not None:
            query["rid"] = f"{resource_type}/{resource_id}"
        elif resource_type is not None:
            query["rt"] = resource_type
        asked = dict(params)
        raw_count = asked.get("_count")
        # At least one entry: the next page starts before the last entry shown.
        count = max(1, self.settings.page_size(None if raw_count is None else parse_count(raw_count)))
        since = asked.get("_since")
        if since:
            _, lo, _ = parse_value(since)
            query["ts"] = {"$gte": lo}
        path = "/".join(p for p in (resource_type, resource_id, "_history") if p)
        scope = history_scope(f"/fhir/{path}", since, count)
        page = asked.get("_page")
        before = _before(page, self.tokens, scope) if page is not None else None
        entries = await self.repository.history_page(caller, resource_type, query, count, before, resource_id)
        has_next = len(entries) > count
        entries = entries[:count]
        url = f"{base_url}/{path}"
        kept = [(k, v) for k, v in params if k != "_page"]
        links = [{"relation": "self", "url": url + (f"?{urlencode(kept)}" if kept else "")}]
        if has_next and entries:
            token = self.tokens.issue(Cursor(True, [entries[-1].key]), scope)
            links.append({"relation": "next", "url": f"{url}?{urlencode([*kept, ('_page', token)])}"})
        bundle_entries = []
        for entry in entries:
            stored = entry.stored
            reference = f"{stored.resource_type}/{stored.id}"
            item: dict[str, Any] = {
                "fullUrl": f"{base_url}/{reference}",
                "request": {"method": entry.method, "url": reference if entry.method != "POST" else stored.resource_type},
                "response": {"status": METHOD_STATUS.get(entry.method, "200 OK"), "etag": f'W/"{stored.version}"',
                             "lastModified": stored.last_updated},
            }
            resource = await outgoing(self.repository, caller, stored)
            if resource is not None:
                item["resource"] = resource
            bundle_entries.append(item)
        return {"resourceType": "Bundle", "type": "history", "link": links, "entry": bundle_entries}
