"""Rewriting a transaction's fullUrls inside its resources (R4 http.html#trules).

An entry's `urn:uuid:`/`urn:oid:` fullUrl becomes the `Type/id` the server gives that entry
wherever the R4 rules say it is a reference: in `Reference.reference`, in elements of type uri, url,
canonical, oid and uuid, and in the `href`/`src` attributes of the narrative. Anything else keeps
the value as sent even when it equals a fullUrl: IHE MHD puts a DocumentReference's own fullUrl in
its entryUUID identifier, and `Identifier.value` is a string. Which element is which comes from the
R4 definitions (`fhir_server.definitions.elements`), never from the look of a value.

`Reference.reference` also resolves the transaction's other forms: an absolute URL of an entry
and a conditional reference (`Patient?identifier=...`, exactly one match).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from fhir_server.definitions.elements import walk
from fhir_server.errors import FhirError
from fhir_server.security.callers import Caller
from fhir_server.storage.repository import Repository, Session

URI_TYPES = frozenset({"uri", "url", "canonical", "oid", "uuid"})
LOCAL_SCHEMES = ("urn:uuid:", "urn:oid:")
# A start tag, quoted attribute values may hold '>'; inside it, an href or src attribute.
_START_TAG = re.compile(r"""<[A-Za-z](?:[^>"']|"[^"]*"|'[^']*')*>""")
_LINK = re.compile(r"""(\b(?:href|src)\s*=\s*)(["'])([^"']*)\2""")


class ReferenceRewriter:
    def __init__(self, repository: Repository, caller: Caller, session: Session, identities: dict[str, str]) -> None:
        """`identities`: fullUrl -> `Type/id` of every entry the transaction creates or updates."""
        self.repo = repository
        self.caller = caller
        self.session = session
        self.identities = identities
        self.local = {url: target for url, target in identities.items() if url.startswith(LOCAL_SCHEMES)}

    async def rewrite(self, resource: dict[str, Any], where: str) -> dict[str, Any]:
        """A copy of `resource` with its references rewritten; `where` names the entry in errors."""
        rewritten: dict[str, Any] = orjson.loads(orjson.dumps(resource))
        for node in walk(rewritten):
            value = node.value
            if not isinstance(value, str):
                continue
            if node.element.path == "Reference.reference":
                node.replace(await self._reference(value, where))
            elif node.element.type in URI_TYPES:
                node.replace(self.local.get(value, value))
            elif node.element.type == "xhtml":
                node.replace(_START_TAG.sub(self._tag_links, value))
        return rewritten

    def _tag_links(self, tag: re.Match[str]) -> str:
        def swap(link: re.Match[str]) -> str:
            target = self.local.get(link.group(3))
            return link.group(0) if target is None else f"{link.group(1)}{link.group(2)}{target}{link.group(2)}"

        return _LINK.sub(swap, tag.group(0))

    async def _reference(self, reference: str, where: str) -> str:
        if reference in self.identities:
            return self.identities[reference]
        if reference.startswith(LOCAL_SCHEMES):
            raise FhirError(400, "not-found", f"{where}: reference '{reference}' names no entry of the bundle", [where])
        if "?" in reference:
            rtype, _, query = reference.partition("?")
            self.repo.check_type(rtype)
            matches = await self.repo.match(self.caller, rtype, query, self.session, limit=2)
            if len(matches) != 1:
                found = "no" if not matches else "more than one"
                raise FhirError(412 if matches else 404, "not-found" if not matches else "multiple-matches",
                                f"{where}: conditional reference '{reference}' matches {found} {rtype}", [where])
            return f"{rtype}/{matches[0]}"
        return reference
