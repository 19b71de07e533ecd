"""The search interaction (FHIR R4 search.html), the same whichever way a client searches.

GET and POST `_search` on a type, system search (`GET [base]?_type=...`) and the search entries
of a batch all come here. So `_count` is read and capped once (0 asks for the total alone),
`_page` tokens are checked and handed out once, and a Binary carries its data whichever route
found it, as `GET [base]/Binary/[id]` gives it.
"""

from __future__ import annotations

from typing import Any

from fhir_server.config import Settings
from fhir_server.errors import FhirError
from fhir_server.operations.system_search import search_types
from fhir_server.search.engine import SearchResult
from fhir_server.search.page_tokens import PageTokens, search_scope
from fhir_server.search.paging import Cursor
from fhir_server.search.request import parse_request
from fhir_server.search.searchset import searchset
from fhir_server.storage.repository import Repository


class SearchInteraction:
    def __init__(self, repository: Repository, tokens: PageTokens, settings: Settings) -> None:
        self.repository = repository
        self.tokens = tokens
        self.settings = settings

    async def search(self, resource_type: str | None, params: list[tuple[str, str]], *, base_url: str,
                     strict: bool) -> dict[str, Any]:
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
            result = await search_types(self.repository, request, base_url=base_url, strict=strict, count=count)
        else:
            result = await self.repository.search(resource_type, request, base_url=base_url, strict=strict, count=count)
        await self._with_binary_data(result)
        # Links carry the criteria and sort the search used, so their tokens are bound to those.
        scope = search_scope(path, request.types, result.used, result.sort, count)

        def page_token(cursor: Cursor) -> str:
            return self.tokens.issue(cursor, scope)

        return searchset(base_url, path, request, result, count, page_token)

    async def _with_binary_data(self, result: SearchResult) -> None:
        for stored in result.matches + result.included:
            if stored.resource_type == "Binary":
                stored.resource = await self.repository.with_binary_data(stored)
