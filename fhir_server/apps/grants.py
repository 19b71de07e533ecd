"""What a patient agreed to let an app do: a grant, its authorization code and its refresh tokens.

A grant (`app_grants` collection) is made when the signed-in person agrees on the consent page: the
app, the person who agreed (their INS), the record it reaches (a Patient id: their own, or a
minor's they represent), the scopes granted, and the authorization code's binding (redirect URI,
PKCE challenge, expiry). Every token the app gets descends from it and names it (claim `grant`),
so revoking the grant ends them all:
- the authorization code is single use and lives CODE_SECONDS; a second use revokes the grant and
  the tokens issued from the first (OAuth 2.0 Security BCP, RFC 9700 4.5; RFC 6749 4.1.2);
- a refresh token is replaced at each use (rotation); presenting one already replaced means it was
  copied: the grant is revoked (RFC 9700 4.14.2);
- the patient revokes it (fhir_server.apps.connections).
Codes and refresh tokens are `<grant id>.<secret>`; only the secret's SHA-256 is stored.

A revocation writes the grant's status and a revocation record (fhir_server.apps.registry): the
running servers refuse its access tokens within a second, and this process at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError

from fhir_server.apps.registry import REVOCATIONS, AppRegistry, revocation_document
from fhir_server.storage.database import Database
from fhir_server.timefmt import now_instant

log = logging.getLogger("fhir_server")
GRANTS = "app_grants"
CODE_SECONDS = 60
# A refresh token not used for this long is refused (the app signs the patient in again).
REFRESH_SECONDS = 90 * 24 * 3600
# Refresh tokens replaced, kept to tell a copied one (revoke) from a made-up one (refuse).
OLD_REFRESH_KEPT = 100
# The scopes that earn a refresh token (SMART App Launch 2.x, "Scopes for requesting a refresh token").
REFRESH_SCOPES = frozenset({"offline_access", "online_access"})
# When an app last used a grant is written at most this often.
USAGE_WRITE_SECONDS = 60.0


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """The S256 challenge of a code verifier (RFC 7636 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def split_secret(value: str) -> tuple[str, str] | None:
    grant, dot, secret = value.partition(".")
    return (grant, secret) if dot and grant and secret and len(value) < 200 else None


class GrantRefused(Exception):
    """The code or refresh token cannot be used (RFC 6749 `invalid_grant`); `revoked` when it
    revoked its grant (a reused code or refresh token)."""

    def __init__(self, description: str, revoked: bool = False) -> None:
        super().__init__(description)
        self.description = description
        self.revoked = revoked


@dataclass(frozen=True)
class Grant:
    grant_id: str
    client_id: str
    # The INS of the person who agreed, and the record the grant reaches (a Patient id).
    subject: str
    patient: str
    scope: str
    status: str
    created: str
    last_used: str | None
    revoked_at: str | None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Grant:
        return cls(document["_id"], document["client_id"], document["subject"], document["patient"],
                   document["scope"], document["status"], document["created"], document.get("last_used"),
                   document.get("revoked_at"))

    @property
    def refreshable(self) -> bool:
        return bool(REFRESH_SCOPES & set(self.scope.split()))


@dataclass
class Grants:
    database: Database
    registry: AppRegistry
    # grant -> when this process last wrote its use (monotonic), to write it at most once a minute.
    _used: dict[str, float] = field(default_factory=dict)
    _writes: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def _collection(self) -> Any:
        return self.database.db[GRANTS]

    async def agree(self, *, client_id: str, subject: str, patient: str, scope: str, redirect_uri: str,
                    challenge: str) -> str:
        """A new grant; the authorization code the app exchanges for its tokens."""
        grant_id, secret = uuid.uuid4().hex, secrets.token_urlsafe(32)
        document = {"_id": grant_id, "client_id": client_id, "subject": subject, "patient": patient, "scope": scope,
                    "status": "active", "created": now_instant(), "redirect_uri": redirect_uri,
                    "challenge": challenge, "code": _digest(secret), "code_expires": time.time() + CODE_SECONDS,
                    "code_used": False, "refresh": None, "refresh_expires": 0, "refresh_old": []}
        async with self.database.gate.write(exclude_readers=False):
            await self._collection.insert_one(document)
        return f"{grant_id}.{secret}"

    async def redeem_code(self, code: str, *, client_id: str, redirect_uri: str, verifier: str) -> Grant:
        """The grant of an authorization code, once: bound to its app, redirect URI and PKCE challenge."""
        parts = split_secret(code)
        document = await self._collection.find_one({"_id": parts[0]}) if parts else None
        if parts is None or document is None or not hmac.compare_digest(document["code"], _digest(parts[1])):
            raise GrantRefused("unknown authorization code")
        if document["code_used"]:
            await self.revoke(document["_id"], "authorization code used twice")
            raise GrantRefused("this authorization code was used before: the tokens issued from it are revoked",
                               revoked=True)
        if document["status"] != "active":
            raise GrantRefused("the agreement this code was issued under is revoked")
        if time.time() > document["code_expires"]:
            raise GrantRefused("the authorization code has expired")
        if document["client_id"] != client_id:
            raise GrantRefused("the authorization code was issued to another client")
        if document["redirect_uri"] != redirect_uri:
            raise GrantRefused("redirect_uri is not the one the authorization request named")
        if not (43 <= len(verifier) <= 128) or not hmac.compare_digest(pkce_challenge(verifier), document["challenge"]):
            raise GrantRefused("code_verifier does not match the code_challenge (PKCE S256)")
        async with self.database.gate.write(exclude_readers=False):
            claimed = await self._collection.update_one({"_id": document["_id"], "code_used": False},
                                                        {"$set": {"code_used": True}})
        if claimed.modified_count == 0:
            await self.revoke(document["_id"], "authorization code used twice")
            raise GrantRefused("this authorization code was used before: the tokens issued from it are revoked",
                               revoked=True)
        return Grant.from_document(document)

    async def new_refresh_token(self, grant: Grant, previous: str | None = None) -> str:
        """A refresh token replacing the grant's current one (`previous`, its digest, when rotating);
        GrantRefused(revoked) when another use replaced `previous` first (a copy raced the app)."""
        secret = secrets.token_urlsafe(32)
        change: dict[str, Any] = {"$set": {"refresh": _digest(secret), "refresh_expires": time.time() + REFRESH_SECONDS}}
        if previous is not None:
            change["$push"] = {"refresh_old": {"$each": [previous], "$slice": -OLD_REFRESH_KEPT}}
        async with self.database.gate.write(exclude_readers=False):
            done = await self._collection.update_one(
                {"_id": grant.grant_id, "status": "active", "refresh": previous}, change)
        if done.modified_count == 0:
            await self.revoke(grant.grant_id, "refresh token used twice")
            raise GrantRefused("this refresh token was used before: the agreement is revoked", revoked=True)
        return f"{grant.grant_id}.{secret}"

    async def redeem_refresh(self, token: str, *, client_id: str) -> tuple[Grant, str]:
        """The grant of a current refresh token and that token's digest (to rotate it); a replaced
        one revokes the grant."""
        found = await self._refresh_document(token)
        if found is None:
            raise GrantRefused("unknown refresh token")
        document, digest = found
        if digest in document.get("refresh_old", []):
            await self.revoke(document["_id"], "refresh token used twice")
            raise GrantRefused("this refresh token was used before: the agreement is revoked", revoked=True)
        if document.get("refresh") is None or not hmac.compare_digest(document["refresh"], digest):
            raise GrantRefused("unknown refresh token")
        if document["status"] != "active":
            raise GrantRefused("the agreement this refresh token was issued under is revoked")
        if time.time() > document["refresh_expires"]:
            raise GrantRefused("the refresh token has expired")
        if document["client_id"] != client_id:
            raise GrantRefused("the refresh token was issued to another client")
        return Grant.from_document(document), digest

    async def of_refresh_token(self, token: str) -> Grant | None:
        """The grant a refresh token was issued under, current or rotated out (RFC 7009 revokes
        the grant of either); None for a token this server did not issue."""
        found = await self._refresh_document(token)
        if found is None:
            return None
        document, digest = found
        current = document.get("refresh")
        if (current is not None and hmac.compare_digest(current, digest)) or digest in document.get("refresh_old", []):
            return Grant.from_document(document)
        return None

    async def _refresh_document(self, token: str) -> tuple[dict[str, Any], str] | None:
        """The grant document a refresh token names (`grant.secret`) and the digest of its secret;
        None when it names no grant."""
        parts = split_secret(token)
        document = await self._collection.find_one({"_id": parts[0]}) if parts else None
        return (document, _digest(parts[1])) if parts is not None and document is not None else None

    async def revoke(self, grant_id: str, why: str) -> bool:
        """End a grant and every token issued under it; False if it was not active."""
        async with self.database.gate.write(exclude_readers=False):
            done = await self._collection.update_one(
                {"_id": grant_id, "status": "active"},
                {"$set": {"status": "revoked", "revoked_at": now_instant(), "revoked_why": why, "refresh": None}})
            await self.database.db[REVOCATIONS].replace_one({"_id": grant_id}, revocation_document(grant_id),
                                                            upsert=True)
        self.registry.revoked(grant_id)
        if done.modified_count:
            log.info("app grant %s revoked: %s", grant_id, why)
        return bool(done.modified_count)

    async def find(self, grant_id: str) -> Grant | None:
        document = await self._collection.find_one({"_id": grant_id})
        return Grant.from_document(document) if document else None

    async def of_record(self, patient: str) -> list[Grant]:
        """The active grants reaching a record, oldest first."""
        found = [Grant.from_document(d) async for d in self._collection.find({"patient": patient, "status": "active"})]
        return sorted(found, key=lambda grant: grant.created)

    async def supersede(self, *, client_id: str, patient: str, keep: str) -> None:
        """A new agreement of the same app for the same record replaces the older ones."""
        for grant in await self.of_record(patient):
            if grant.client_id == client_id and grant.grant_id != keep:
                await self.revoke(grant.grant_id, "replaced by a new agreement")

    def used(self, grant_id: str) -> None:
        """An app used this grant now: written in the background, at most once a minute per process."""
        now = time.monotonic()
        if now - self._used.get(grant_id, -USAGE_WRITE_SECONDS) < USAGE_WRITE_SECONDS:
            return
        if len(self._used) > 10_000:
            self._used.clear()
        self._used[grant_id] = now
        task = asyncio.get_running_loop().create_task(self._write_use(grant_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_use(self, grant_id: str) -> None:
        try:
            async with self.database.gate.write(exclude_readers=False):
                await self._collection.update_one({"_id": grant_id}, {"$set": {"last_used": now_instant()}})
        except PyMongoError as exc:
            log.warning("cannot record the use of app grant %s: %s", grant_id, exc)

