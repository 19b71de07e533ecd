"""Patient sign-in through an external OpenID Connect provider (OpenID Connect Core 1.0, authorization
code flow), when FHIR_OIDC_ISSUER, FHIR_OIDC_CLIENT_ID and FHIR_OIDC_CLIENT_SECRET are set.

The server is the provider's confidential client (`client_secret_post`): the sign-in page links to
`/auth/oidc/start`, which sends the browser to the provider with a random `state`, a `nonce` and a
PKCE challenge, all kept in `oidc_states` bound to the browser session and the waiting
authorization request; the provider sends it back to `/auth/oidc/callback`, where the code is
exchanged (through fhir_server.outbound: the destination policy applies) and the ID token checked:
signature by a key of the provider's JWKS (an algorithm fitting the key; none and HMAC refused),
`iss`, `aud` = our client id, `exp`, and the `nonce`. The person's INS is the claim
FHIR_OIDC_INS_CLAIM (default `ins`). The provider's metadata comes from its discovery document
(`<issuer>/.well-known/openid-configuration`), read once.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt

from fhir_server.apps.grants import pkce_challenge
from fhir_server.apps.signin import digest
from fhir_server.config import Settings
from fhir_server.outbound import OutboundClient, OutboundError
from fhir_server.security.tokens import ALGORITHMS, LEEWAY_SECONDS, InvalidToken, TrustedIssuer, fitting_algorithms
from fhir_server.storage.database import Database

STATES = "oidc_states"
STATE_SECONDS = 600
CALLBACK_PATH = "/auth/oidc/callback"


class SignInFailed(Exception):
    """The provider's answer cannot sign anyone in; the message is for the log, not the page."""


@dataclass(frozen=True)
class Started:
    request_id: str
    verifier: str
    nonce: str


@dataclass
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str
    ins_claim: str
    scope: str
    outbound: OutboundClient
    _metadata: dict[str, Any] | None = None
    _keys: TrustedIssuer | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, outbound: OutboundClient) -> OidcProvider | None:
        if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret):
            return None
        return cls(settings.oidc_issuer.rstrip("/"), settings.oidc_client_id, settings.oidc_client_secret,
                   settings.oidc_ins_claim, settings.oidc_scope, outbound)

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if document.get("issuer", "").rstrip("/") != self.issuer:
                raise SignInFailed("the provider's discovery document names another issuer")
            self._metadata = document
            # The same JWKS fetching, caching and refetch-on-unknown-kid as trusted token issuers.
            self._keys = TrustedIssuer(self.issuer, str(document["jwks_uri"]), {}, None, self.outbound)
        return self._metadata

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            answer = await self.outbound.request("GET", url, headers={"Accept": "application/json"})
            if answer.status != 200:
                raise SignInFailed(f"{url} answered HTTP {answer.status}")
            return dict(json.loads(answer.body))
        except (OutboundError, ValueError) as exc:
            raise SignInFailed(f"{url}: {exc}") from None

    async def start(self, database: Database, session: str, request_id: str, callback: str) -> str:
        """Where to send the browser: the provider's authorization endpoint, with what binds its answer."""
        metadata = await self.metadata()
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        async with database.gate.write(exclude_readers=False):
            await database.db[STATES].delete_many({"expires": {"$lt": time.time()}})
            await database.db[STATES].insert_one({"_id": digest(state), "session": digest(session),
                                                  "request": request_id, "nonce": nonce, "verifier": verifier,
                                                  "expires": time.time() + STATE_SECONDS})
        return str(metadata["authorization_endpoint"]) + "?" + urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": callback, "scope": self.scope,
            "state": state, "nonce": nonce, "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256"})

    async def take_state(self, database: Database, session: str, state: str) -> Started | None:
        """The sign-in this `state` started from this browser session, once."""
        async with database.gate.write(exclude_readers=False):
            found = await database.db[STATES].find_one_and_delete({"_id": digest(state)}) if state else None
        if found is None or found["session"] != digest(session) or found["expires"] < time.time():
            return None
        return Started(found["request"], found["verifier"], found["nonce"])

    async def finish(self, code: str, started: Started, callback: str) -> str:
        """The INS of the person the provider signed in; SignInFailed otherwise."""
        metadata = await self.metadata()
        form = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": callback,
                          "client_id": self.client_id, "client_secret": self.client_secret,
                          "code_verifier": started.verifier}).encode("ascii")
        try:
            answer = await self.outbound.request("POST", str(metadata["token_endpoint"]), content=form, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
            tokens = json.loads(answer.body) if answer.status == 200 else None
        except (OutboundError, ValueError) as exc:
            raise SignInFailed(f"token endpoint: {exc}") from None
        if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
            raise SignInFailed(f"the token endpoint answered HTTP {answer.status} without an ID token")
        claims = await self._verified(tokens["id_token"])
        if claims.get("nonce") != started.nonce:
            raise SignInFailed("the ID token's nonce is not the one sent")
        ins = claims.get(self.ins_claim)
        if not isinstance(ins, str) or not ins:
            raise SignInFailed(f"the ID token carries no {self.ins_claim} claim")
        return ins

    async def _verified(self, id_token: str) -> dict[str, Any]:
        assert self._keys is not None
        try:
            header = jwt.get_unverified_header(id_token)
            key = await self._keys.key(header.get("kid"))
            return dict(jwt.decode(id_token, key.key, algorithms=fitting_algorithms(key, ALGORITHMS),
                                   audience=self.client_id, issuer=self.issuer, leeway=LEEWAY_SECONDS,
                                   options={"require": ["exp", "iss", "aud", "sub"]}))
        except (jwt.PyJWTError, InvalidToken, TypeError, ValueError) as exc:
            raise SignInFailed(f"the ID token is not acceptable: {exc}") from None
