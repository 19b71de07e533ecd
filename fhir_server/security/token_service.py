"""The token endpoint of the built-in authorization server: SMART Backend Services.

`POST /auth/token` with `grant_type=client_credentials`, `scope`, and a `private_key_jwt` client
assertion (RFC 7523): a JWT signed RS384 or ES384 with a key of the client's registered JWKS, whose
`iss` and `sub` are the client id, `aud` this endpoint's URL, `exp` at most five minutes ahead and
`jti` never used before (SMART App Launch 2.x, "Backend Services"). The access token granted names
the client, its organisation and role, and the requested scopes its registration allows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from fhir_server.security.clients import find_client, remember_assertion
from fhir_server.security.minting import mint
from fhir_server.security.scopes import Scopes
from fhir_server.security.signing import KeyRing
from fhir_server.security.tokens import fitting_algorithms, jwks_keys
from fhir_server.storage.database import Database

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_ASSERTION_LIFETIME = 300
ACCESS_TOKEN_SECONDS = 300


class OAuthError(Exception):
    """An RFC 6749 error answer: `{"error", "error_description"}` with its status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def claimed_client(form: dict[str, str]) -> str | None:
    """The client a token request says it comes from (`client_id`, else its assertion's `iss`),
    before anything is verified: what its failures are counted against (fhir_server.limits)."""
    if form.get("client_id"):
        return form["client_id"]
    try:
        issuer = jwt.decode(form.get("client_assertion") or "", options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    return issuer if isinstance(issuer, str) and issuer else None


def granted(requested: str, allowed: str) -> str:
    """The requested scopes the registration allows: each one as registered, or covered by a
    registered scope of the same context with a wider type and every letter it asks."""
    registered = Scopes.parse(allowed)
    out = []
    for word in requested.split():
        wanted = Scopes.parse(word)
        if word in registered.text:
            out.append(word)
        elif wanted.resource and all(
                any(r.context == w.context and r.resource_type in ("*", w.resource_type) and w.letters <= r.letters
                    and not r.criteria for r in registered.resource) for w in wanted.resource):
            out.append(word)
    return " ".join(out)


async def check_assertion(database: Database, assertion: str, token_url: str, client_id: str,
                          jwks: dict[str, Any]) -> None:
    """OAuthError unless `assertion` is a fresh private_key_jwt of this client (RFC 7523; SMART
    App Launch 2.x, "Client Authentication: Asymmetric"), signed by a key of `jwks`; its jti is
    remembered so it cannot be replayed."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise OAuthError("invalid_client", "the client assertion is not a JWT", 401) from None
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise OAuthError("invalid_client", f"the client assertion must be signed {' or '.join(ASSERTION_ALGORITHMS)}", 401)
    keys = jwks_keys(jwks)
    kid = header.get("kid")
    candidates = [keys[kid]] if kid in keys else ([] if kid is not None else list(keys.values()))
    claims = None
    for key in candidates:
        try:
            claims = jwt.decode(assertion, key.key, algorithms=fitting_algorithms(key, ASSERTION_ALGORITHMS),
                                audience=token_url,
                                issuer=client_id, options={"require": ["exp", "iss", "sub", "aud", "jti"]})
            break
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            continue
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise OAuthError("invalid_client", f"the client assertion is not acceptable: {exc}", 401) from None
    if claims is None:
        raise OAuthError("invalid_client", "the client assertion is not signed by a key of the client's JWKS", 401)
    if claims["sub"] != client_id:
        raise OAuthError("invalid_client", "the client assertion's sub must be the client id", 401)
    if int(claims["exp"]) > time.time() + MAX_ASSERTION_LIFETIME + 30:
        raise OAuthError("invalid_client", f"the client assertion may live {MAX_ASSERTION_LIFETIME} s at most", 401)
    async with database.gate.write(exclude_readers=False):
        fresh = await remember_assertion(database.db, client_id, str(claims["jti"]), int(claims["exp"]))
    if not fresh:
        raise OAuthError("invalid_client", "this client assertion (jti) was used before", 401)


@dataclass
class TokenService:
    database: Database
    keys: KeyRing

    async def client_credentials(self, form: dict[str, str], token_url: str, audience: str) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "this endpoint grants client_credentials only")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise OAuthError("invalid_client", f"a client_assertion of type {ASSERTION_TYPE} is required", 401)
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
            client_id = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise OAuthError("invalid_client", "the client assertion is not a JWT", 401) from None
        if header.get("alg") not in ASSERTION_ALGORITHMS:
            raise OAuthError("invalid_client", f"the client assertion must be signed {' or '.join(ASSERTION_ALGORITHMS)}", 401)
        client = await find_client(self.database.db, client_id) if isinstance(client_id, str) else None
        if client is None or client.disabled:
            raise OAuthError("invalid_client", "unknown or disabled client", 401)
        await check_assertion(self.database, assertion, token_url, client.client_id, client.jwks)
        try:
            scope = granted(form.get("scope", ""), client.scope)
        except ValueError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        if not scope:
            raise OAuthError("invalid_scope", "none of the requested scopes is allowed to this client")
        token = mint(self.keys.signer, kind="system", audience=audience, ttl=ACCESS_TOKEN_SECONDS, scope=scope,
                     subject=client.client_id,
                     identity={"client_id": client.client_id, "organization": client.finess, "role": client.role})
        return {"access_token": token, "token_type": "bearer", "expires_in": ACCESS_TOKEN_SECONDS, "scope": scope}
