"""The search interaction (FHIR R4 search.html), the same whichever way a client searches.

GET and POST `_search` on a type, system search (`GET [base]?_type=...`) and the search entries
of a batch all come here. So `_count` is read and capped once (0 asks for the total alone),
`_page` tokens are checked and handed out once, and every match and include leaves through
`interactions.output.outgoing` (Binary data, the resource-read hook, `_summary`, `_elements`).
What the caller may not see never matches: the repository adds the search-filter hook's
conditions to every query of the search.
"""

from __future__ import annotations

from typing import Any

from fhir_server.config import Settings
from fhir_server.errors import FhirError
from fhir_server.interactions.output import outgoing
from fhir_server.operations.system_search import search_types
from fhir_server.search.engine import SearchResult
from fhir_server.search.page_tokens import PageTokens, search_scope
from fhir_server.search.paging import Cursor
from fhir_server.search.request import SearchRequest, parse_request
from fhir_server.search.searchset import Shown, searchset
from fhir_server.security.callers import Caller
from fhir_server.storage.repository import Repository


class SearchInteraction:
    def __init__(self, repository: Repository, tokens: PageTokens, settings: Settings) -> None:
        self.repository = repository
        self.tokens = tokens
        self.settings = settings

    async def search(self, caller: Caller, resource_type: str | None, params: list[tuple[str, str]], *,
                     base_url: str, strict: bool) -> dict[str, Any]:
        """The searchset Bundle of `params` on one type, or across `_type` when `resource_type` is None."""
        request = parse_request(params)
        count = self.settings.page_size(request.count)
        path = resource_type or ""
        if resource_type is None:
            if not request.types:
                raise FhirError(400, "required", "A system-level search needs _type (e.g. _type=Patient,Practitioner)")
        else:
            self.repository.check_type(resource_type)
        if request.page is not None:
            scope = search_scope(path, request.types, request.criteria, request.sort, count)
            request.cursor = self.tokens.open(request.page, scope)
        if resource_type is None:
            result = await search_types(self.repository, caller, request, base_url=base_url, strict=strict,
                                        count=count)
        else:
            result = await self.repository.search(caller, resource_type, request, base_url=base_url, strict=strict,
                                                  count=count)
        shown = await self._shown(caller, result, request)
        # Links carry the criteria and sort the search used, so their tokens are bound to those.
        scope = search_scope(path, request.types, result.used, result.sort, count)

        def page_token(cursor: Cursor) -> str:
            return self.tokens.issue(cursor, scope)

        return searchset(base_url, path, request, result, shown, count, page_token)

    async def _shown(self, caller: Caller, result: SearchResult, request: SearchRequest) -> list[Shown]:
        shown: list[Shown] = []
        for mode, found in (("match", result.matches), ("include", result.included)):
            for stored in found:
                resource = await outgoing(self.repository, caller, stored, summary=request.summary,
                                          elements=request.elements)
                if resource is not None:
                    shown.append((stored, resource, mode))
        return shown
