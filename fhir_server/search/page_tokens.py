"""`_page` values as the server hands them out: a keyset cursor, signed and bound to its search.

A token is `<payload>.<mac>`: the cursor as base64url JSON, then an HMAC-SHA256, under a server
secret (fhir_server.security.server_keys), of the search the token belongs to (its scope) and of
that payload. A client can follow the links it was given; it cannot make up a cursor, alter one,
or carry one over to another search. Anything else gets the same 400, which names nothing the
server holds. The payload is not secret: it holds sort values of a resource the client was shown.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

import orjson

from fhir_server.search.paging import Cursor, foreign_page
from fhir_server.search.request import Criterion

# Far above any token the server makes; a longer value is refused before any work on it.
MAX_TOKEN = 4096


def search_scope(path: str, types: list[str], criteria: list[Criterion], sort: list[tuple[str, bool]], count: int) -> bytes:
    """What decides a search's pages: where it runs, what it selects, its order and page size.

    Criteria are ANDed and the values of one are ORed, so neither order counts; sort keys keep theirs.
    """
    selected = sorted([c.raw_name, sorted(c.values)] for c in criteria)
    return orjson.dumps(["search", path, types, selected, [[name, descending] for name, descending in sort], count])


def history_scope(path: str, since: str | None, count: int) -> bytes:
    return orjson.dumps(["history", path, since, count])


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, scope: bytes, payload: bytes) -> str:
        # JSON scopes and base64 payloads hold no newline, so the two parts cannot run into each other.
        return _encode(hmac.digest(self._secret, scope + b"\n" + payload, "sha256"))

    def issue(self, cursor: Cursor, scope: bytes) -> str:
        payload = _encode(orjson.dumps({"f": cursor.forward, "v": cursor.values}))
        return f"{payload}.{self._mac(scope, payload.encode('ascii'))}"

    def open(self, token: str, scope: bytes) -> Cursor:
        """The cursor of a token this server issued for `scope`; anything else is refused."""
        if len(token) > MAX_TOKEN or not token.isascii():
            raise foreign_page()
        payload, _, mac = token.partition(".")
        if not hmac.compare_digest(self._mac(scope, payload.encode("ascii")), mac):
            raise foreign_page()
        try:
            data: Any = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (binascii.Error, ValueError) as exc:
            raise foreign_page() from exc
        if not isinstance(data, dict) or not isinstance(data.get("f"), bool) or not isinstance(data.get("v"), list):
            raise foreign_page()
        return Cursor(data["f"], data["v"])
