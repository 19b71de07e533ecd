"""An authorization request (RFC 6749 4.1.1, RFC 7636, SMART App Launch 2.x standalone launch), from
`GET /auth/authorize` to the patient's answer on the consent page.

Its checks come in the order RFC 6749 4.1.2.1 sets: an unknown client or a redirect URI that is
not exactly one the app registered is said on a page, never by sending the browser there (an open
redirector otherwise); an app that may not connect now (suspended, withdrawn, listed only) too, so
the patient learns why; every other fault goes back to the app as `error=` on its redirect URI.

While the person signs in and reads the consent page, the request waits in `auth_requests`, under
a random id the pages carry, bound to the browser session that started it (the SHA-256 of its
id): another browser holding the id gets nothing. It lives REQUEST_SECONDS.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from fhir_server.apps.registry import App, find_app
from fhir_server.apps.signin import digest
from fhir_server.security.token_service import granted
from fhir_server.storage.database import Database

REQUESTS = "auth_requests"
REQUEST_SECONDS = 900
# RFC 7636 4.2: BASE64URL(SHA256(verifier)), 43 characters.
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class PageError(Exception):
    """A fault said to the person on a page (no redirect): `key` names its words in messages.json."""

    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status = status
        self.key = key


@dataclass(frozen=True)
class Pending:
    request_id: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    challenge: str

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Pending:
        return cls(document["_id"], document["client_id"], document["redirect_uri"], document["scope"],
                   document["state"], document["challenge"])


def redirect_with(uri: str, values: dict[str, str]) -> str:
    """`uri` with these query parameters added to those it has (RFC 6749 3.1.2: kept)."""
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(values)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class RedirectError(Exception):
    """A fault the app hears about on its redirect URI (RFC 6749 4.1.2.1)."""

    def __init__(self, redirect_uri: str, error: str, description: str, state: str | None) -> None:
        super().__init__(description)
        values = {"error": error, "error_description": description}
        if state:
            values["state"] = state
        self.location = redirect_with(redirect_uri, values)


async def check(database: Database, params: dict[str, str], audience: str) -> tuple[App, dict[str, str]]:
    """The app and the request's parameters, once every check passed; PageError or RedirectError."""
    app = await find_app(database.db, params.get("client_id", "")) if params.get("client_id") else None
    if app is None:
        raise PageError(400, "unknown_app")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in app.redirect_uris:
        raise PageError(400, "wrong_redirect")
    if not app.may_connect:
        raise PageError(403, "app_not_referenced")
    state = params.get("state")

    def refuse(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, error, description, state)

    if params.get("response_type") != "code":
        raise refuse("unsupported_response_type", "response_type must be code")
    if not state:
        raise refuse("invalid_request", "state is required (SMART App Launch 2.x)")
    if params.get("code_challenge_method") != "S256" or not _CHALLENGE.fullmatch(params.get("code_challenge", "")):
        raise refuse("invalid_request", "PKCE is required: code_challenge (S256 of the verifier) and "
                                        "code_challenge_method=S256")
    if params.get("aud", "").rstrip("/") != audience.rstrip("/"):
        raise refuse("invalid_request", f"aud must be this server's FHIR base URL, {audience}")
    scope = params.get("scope", "")
    try:
        allowed = granted(scope, app.scope)
    except ValueError as exc:
        raise refuse("invalid_scope", str(exc)) from None
    beyond = [word for word in scope.split() if word not in allowed.split()]
    if not scope.split() or beyond:
        raise refuse("invalid_scope", "scopes this app may not ask for: " + (" ".join(beyond) or "(none asked)"))
    return app, {"client_id": app.client_id, "redirect_uri": redirect_uri, "scope": scope, "state": state,
                 "challenge": params["code_challenge"]}


async def remember(database: Database, session: str, values: dict[str, str]) -> str:
    request_id = secrets.token_urlsafe(24)
    async with database.gate.write(exclude_readers=False):
        await database.db[REQUESTS].delete_many({"expires": {"$lt": time.time()}})
        await database.db[REQUESTS].insert_one({"_id": request_id, "session": digest(session),
                                                "expires": time.time() + REQUEST_SECONDS, **values})
    return request_id


async def pending(database: Database, request_id: str, session: str) -> Pending:
    """The waiting request of this id started by this browser session; PageError otherwise."""
    document = await database.db[REQUESTS].find_one({"_id": request_id}) if request_id else None
    if document is None or document["session"] != digest(session) or document["expires"] < time.time():
        raise PageError(400, "request_expired")
    return Pending.from_document(document)


async def rebind(database: Database, request_id: str, session: str) -> None:
    """The browser got a new session id at sign-in: the request follows it."""
    async with database.gate.write(exclude_readers=False):
        await database.db[REQUESTS].update_one({"_id": request_id}, {"$set": {"session": digest(session)}})


async def forget(database: Database, request_id: str) -> bool:
    """Answered: the request is gone (False when another answer took it first)."""
    async with database.gate.write(exclude_readers=False):
        done = await database.db[REQUESTS].delete_one({"_id": request_id})
    return done.deleted_count == 1
