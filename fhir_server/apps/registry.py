"""The apps of the catalogue: what an admin registers (`fhir-server apps`), and what a running
server knows of them.

An app is an OAuth 2.0 client of the built-in authorization server, of a kind other than the
systems of fhir_server.security.clients: it acts for a patient who agreed (SMART App Launch,
standalone launch), never for an organisation. Its document in the `apps` collection holds the
catalogue's facts (name, publisher, description, category), its referencing status (`referenced`,
`suspended`, `withdrawn`, arrêtés of 23 June 2022 and 23 October 2023) and its date, the redirect
URIs it may be sent back to (compared exactly), its public keys (JWKS: a confidential client
authenticating with private_key_jwt) or the public-client flag (PKCE alone), the scopes it may ask
for, and whether it may exchange data or is only listed.

The running server reads the apps again every second (`AppRegistry`), with the grants revoked
lately (fhir_server.apps.grants): the token check refuses a token of an app that is no longer
referenced or of a revoked grant with two set lookups, so a `suspend` by the command line (another
process) or a revocation in another worker takes effect within that second.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.security.callers import Caller
from fhir_server.security.scopes import Scopes
from fhir_server.security.tokens import jwks_keys
from fhir_server.storage import leases
from fhir_server.storage.database import Database
from fhir_server.timefmt import now_instant
from fhir_server.web.cors import parse_origins

log = logging.getLogger("fhir_server")
APPS = "apps"
# Revoked grants whose access tokens may still be alive: {_id: grant id, at: epoch seconds}.
REVOCATIONS = "app_revocations"
REFRESH_SECONDS = 1.0
# A revocation is kept past the longest life of an access token the grant may have issued (with the
# verifier's leeway): after that the grant's tokens are all dead anyway.
REVOCATION_KEPT_SECONDS = 600
Status = Literal["referenced", "suspended", "withdrawn"]
STATUSES: tuple[Status, ...] = ("referenced", "suspended", "withdrawn")


@dataclass(frozen=True)
class App:
    client_id: str
    name: str
    publisher: str
    description: str
    category: str
    status: Status
    status_date: str
    redirect_uris: tuple[str, ...]
    scope: str
    # Confidential clients authenticate with private_key_jwt against these keys; None: a public client.
    jwks: dict[str, Any] | None
    # False: listed in the catalogue only, it may not connect to a record.
    exchange: bool

    @property
    def public(self) -> bool:
        return self.jwks is None

    @property
    def may_connect(self) -> bool:
        return self.status == "referenced" and self.exchange

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> App:
        return cls(document["_id"], document.get("name", ""), document.get("publisher", ""),
                   document.get("description", ""), document.get("category", ""), document.get("status", "withdrawn"),
                   document.get("status_date", ""), tuple(document.get("redirect_uris") or ()),
                   document.get("scope", ""), document.get("jwks"), bool(document.get("exchange")))

    def catalogue_entry(self) -> dict[str, Any]:
        """What the public catalogue says of it: nothing of its keys or redirect URIs."""
        return {"client_id": self.client_id, "name": self.name, "publisher": self.publisher,
                "description": self.description, "category": self.category, "status": self.status,
                "status_date": self.status_date, "exchange": self.exchange}


def check_redirect_uri(uri: str) -> None:
    """ValueError unless `uri` may be registered: https (http only for a loopback address, RFC 8252
    7.3), no fragment (RFC 6749 3.1.2)."""
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment or (
            parts.scheme == "http" and not loopback):
        raise ValueError(f"redirect URI {uri!r} must be an https URL without fragment (http only on a loopback address)")


def new_app(*, name: str, publisher: str, description: str, category: str, redirect_uris: list[str], scope: str,
            jwks: dict[str, Any] | None, exchange: bool) -> dict[str, Any]:
    """The document of a new app, referenced from today; ValueError says what cannot be registered."""
    if not name.strip():
        raise ValueError("an app needs a name")
    if exchange and not redirect_uris:
        raise ValueError("an app that exchanges data needs at least one redirect URI")
    for uri in redirect_uris:
        check_redirect_uri(uri)
    Scopes.parse(scope)
    if jwks is not None:
        jwks_keys(jwks)
    return {"_id": str(uuid.uuid4()), "name": name, "publisher": publisher, "description": description,
            "category": category, "status": "referenced", "status_date": now_instant()[:10],
            "redirect_uris": redirect_uris, "scope": scope, "jwks": jwks, "exchange": exchange,
            "created": now_instant()}


async def find_app(db: AsyncDatabase[dict[str, Any]], client_id: str) -> App | None:
    document = await db[APPS].find_one({"_id": client_id})
    return App.from_document(document) if document else None


async def referenced_apps(db: AsyncDatabase[dict[str, Any]]) -> list[App]:
    apps = [App.from_document(d) async for d in db[APPS].find({"status": "referenced"})]
    return sorted(apps, key=lambda app: app.name.lower())


def _origin(uri: str) -> str | None:
    parts = urlsplit(uri)
    try:
        return next(iter(parse_origins(f"{parts.scheme}://{parts.netloc}")))
    except ValueError:
        return None


@dataclass
class AppRegistry:
    """What the running server knows of the apps and of the grants revoked lately."""

    database: Database
    # Apps that may not act now (suspended, withdrawn, listed only): their tokens are refused.
    blocked: frozenset[str] = frozenset()
    # Grants revoked (by their patient, a reused code or refresh token) whose access tokens may still live.
    revoked_grants: set[str] = field(default_factory=set)
    # The origins of referenced apps' redirect URIs: browser apps call the API from there (CORS).
    origins: frozenset[str] = frozenset()
    # Revocations made by this process lately: kept even if a reload started before they were written.
    _local: dict[str, float] = field(default_factory=dict)
    _purged_at: float = 0.0
    _task: asyncio.Task[None] | None = None

    def refuses(self, caller: Caller) -> str | None:
        """Why a verified token may not be used now, or None."""
        if caller.client_id is not None and caller.client_id in self.blocked:
            return "the token's app is not referenced now (suspended or withdrawn)"
        if caller.grant is not None and caller.grant in self.revoked_grants:
            return "the patient's agreement this token was granted under is revoked"
        return None

    async def refresh(self) -> None:
        db = self.database.db
        now = time.time()
        if now - self._purged_at > REVOCATION_KEPT_SECONDS / 10:
            self._purged_at = now
            async with self.database.gate.write(exclude_readers=False):
                await db[REVOCATIONS].delete_many({"at": {"$lt": now - REVOCATION_KEPT_SECONDS}})
        blocked, origins = set(), set()
        async for document in db[APPS].find({}, {"jwks": 0}):
            app = App.from_document(document)
            if not app.may_connect:
                blocked.add(app.client_id)
            elif app.status == "referenced":
                origins.update(o for o in map(_origin, app.redirect_uris) if o)
        revoked = {document["_id"] async for document in db[REVOCATIONS].find({})}
        self._local = {grant: at for grant, at in self._local.items() if at > now - 10 * REFRESH_SECONDS}
        self.blocked, self.origins = frozenset(blocked), frozenset(origins)
        self.revoked_grants = revoked | set(self._local)

    def revoked(self, grant: str) -> None:
        """This process revoked `grant`: its tokens are refused here at once (others follow within a second)."""
        self._local[grant] = time.time()
        self.revoked_grants.add(grant)

    async def start(self) -> None:
        await self.refresh()
        self._task = leases.reloading(REFRESH_SECONDS, self.refresh, log, "the registered apps")

    async def stop(self) -> None:
        await leases.cancel(self._task)


def revocation_document(grant: str) -> dict[str, Any]:
    return {"_id": grant, "at": time.time()}
