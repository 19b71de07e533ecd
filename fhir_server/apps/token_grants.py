"""The token endpoint's grants for apps: `authorization_code` (with PKCE) and `refresh_token`.

The client authenticates as it registered (fhir_server.apps.registry): a public client names
itself with `client_id` and proves nothing more than PKCE (RFC 7636); a confidential one signs a
private_key_jwt assertion (fhir_server.security.token_service.check_assertion). An app no longer
referenced gets nothing.

The access token is the token of the patient who agreed, narrowed to the app: kind `patient` with
their INS (so the access rules of their record apply to it as to them, a representative's
included), the record in context (`patient`, a Patient id), the app's client id (audited as the
app acting for the patient, fhir_server.audit.events) and the grant it descends from (`grant`),
with the granted scopes only. A refresh token comes with `offline_access` or `online_access`.

The revocation endpoint (RFC 7009) takes either token back from the client it was issued to: the
whole grant ends, so the other token of the pair stops too (RFC 7009 2.1 lets a server do so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from fhir_server.apps.grants import Grant, GrantRefused, Grants
from fhir_server.apps.registry import App, find_app
from fhir_server.security.minting import mint
from fhir_server.security.scopes import Scopes
from fhir_server.security.signing import KeyRing
from fhir_server.security.token_service import ACCESS_TOKEN_SECONDS, ASSERTION_TYPE, OAuthError, check_assertion
from fhir_server.security.tokens import InvalidToken, TokenVerifier
from fhir_server.storage.database import Database

GRANT_TYPES = ("authorization_code", "refresh_token")


@dataclass
class AppTokens:
    database: Database
    keys: KeyRing
    grants: Grants

    async def exchange(self, form: dict[str, str], token_url: str, audience: str) -> dict[str, Any]:
        app = await self._client(form, token_url)
        try:
            if form.get("grant_type") == "authorization_code":
                grant = await self.grants.redeem_code(form.get("code", ""), client_id=app.client_id,
                                                      redirect_uri=form.get("redirect_uri", ""),
                                                      verifier=form.get("code_verifier", ""))
                scope = grant.scope
                refresh = await self.grants.new_refresh_token(grant) if grant.refreshable else None
            else:
                grant, previous = await self.grants.redeem_refresh(form.get("refresh_token", ""), client_id=app.client_id)
                scope = _narrowed(form.get("scope"), grant)
                refresh = await self.grants.new_refresh_token(grant, previous)
        except GrantRefused as refused:
            raise OAuthError("invalid_grant", refused.description) from None
        token = mint(self.keys.signer, kind="patient", audience=audience, ttl=ACCESS_TOKEN_SECONDS, scope=scope,
                     subject=grant.subject, identity={"ins": grant.subject, "patient": grant.patient,
                                                      "client_id": app.client_id, "grant": grant.grant_id})
        answer: dict[str, Any] = {"access_token": token, "token_type": "bearer", "expires_in": ACCESS_TOKEN_SECONDS,
                                  "scope": scope, "patient": grant.patient}
        if refresh is not None:
            answer["refresh_token"] = refresh
        return answer

    async def revoke(self, form: dict[str, str], token_url: str, verifier: TokenVerifier, audience: str) -> None:
        """RFC 7009 2.1: the client authenticates as at the token endpoint; a token it does not hold
        (unknown, expired, another client's, already revoked) is answered as revoked all the same
        (2.2), so the endpoint says nothing of other clients' tokens."""
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "name the token to revoke: `token`")
        app = await self._client(form, token_url, revoking=True)
        grant = await self._grant_of(token, verifier, audience)
        if grant is not None and grant.client_id == app.client_id:
            await self.grants.revoke(grant.grant_id, "revoked by the app (RFC 7009)")

    async def _grant_of(self, token: str, verifier: TokenVerifier, audience: str) -> Grant | None:
        # A JWT has three dot-separated parts; a refresh token is `grant.secret`.
        if token.count(".") != 2:
            return await self.grants.of_refresh_token(token)
        try:
            caller = await verifier.verify(token, audience)
        except InvalidToken:
            return None
        return await self.grants.find(caller.grant) if caller.grant else None

    async def _client(self, form: dict[str, str], token_url: str, revoking: bool = False) -> App:
        assertion = form.get("client_assertion")
        client_id = form.get("client_id")
        if assertion and not client_id:
            try:
                claimed = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            except jwt.PyJWTError:
                raise OAuthError("invalid_client", "the client assertion is not a JWT", 401) from None
            client_id = claimed if isinstance(claimed, str) else None
        app = await find_app(self.database.db, client_id) if client_id else None
        if app is None:
            raise OAuthError("invalid_client", "unknown client (send client_id, or a client assertion)", 401)
        if app.public:
            if assertion:
                raise OAuthError("invalid_client", "this client is registered as public: it sends no client assertion", 401)
        else:
            if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
                raise OAuthError("invalid_client", f"a client_assertion of type {ASSERTION_TYPE} is required", 401)
            assert app.jwks is not None
            await check_assertion(self.database, assertion, token_url, app.client_id, app.jwks)
        # A withdrawn app may still hand back what it holds.
        if not app.may_connect and not revoking:
            raise OAuthError("invalid_client", "this app is not referenced now (suspended or withdrawn)", 401)
        return app


def _narrowed(asked: str | None, grant: Grant) -> str:
    """A refresh may ask fewer scopes than the grant's, never more (RFC 6749 6)."""
    if not asked:
        return grant.scope
    try:
        Scopes.parse(asked)
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    beyond = [word for word in asked.split() if word not in grant.scope.split()]
    if beyond:
        raise OAuthError("invalid_scope", f"beyond what the patient granted: {' '.join(beyond)}")
    return asked
