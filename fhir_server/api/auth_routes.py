"""The built-in authorization server's endpoints and the SMART discovery document.

The token endpoint grants `client_credentials` to registered systems (security/token_service.py)
and `authorization_code` and `refresh_token` to the catalogue's apps (apps/token_grants.py), whose
tokens the revocation endpoint (RFC 7009) takes back; the authorization endpoint and its pages are
apps/pages.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.body import read_body
from fhir_server.api.rate_limits import scope_address, too_many
from fhir_server.api.responses import base_url, json_response
from fhir_server.apps.token_grants import GRANT_TYPES
from fhir_server.limits import Exceeded, Limiter
from fhir_server.security.token_service import ASSERTION_ALGORITHMS, OAuthError, TokenService, claimed_client
from fhir_server.security.tokens import own_issuer, server_root

router = APIRouter()
# SMART App Launch 2.x capabilities this server has (smart-configuration `capabilities`): backend
# services, and the standalone patient launch of the catalogue's apps (fhir_server.apps), public
# or confidential, with refresh tokens (DECISIONS: advertised as permission-offline).
CAPABILITIES = ["launch-standalone", "context-standalone-patient", "client-public", "client-confidential-asymmetric",
                "permission-offline", "permission-patient", "permission-v1", "permission-v2"]
SCOPES = ["system/*.cruds", "user/*.cruds", "patient/*.cruds", "system/*.rs", "user/*.rs", "patient/*.rs",
          "launch/patient", "openid", "fhirUser", "offline_access", "online_access"]


def smart_configuration(base: str) -> dict[str, Any]:
    root = server_root(base)
    return {
        "issuer": own_issuer(base),
        "jwks_uri": f"{root}/auth/jwks",
        "authorization_endpoint": f"{root}/auth/authorize",
        "token_endpoint": f"{root}/auth/token",
        "revocation_endpoint": f"{root}/auth/revoke",
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "scopes_supported": SCOPES,
        "capabilities": CAPABILITIES,
    }


def capability_security(base: str) -> dict[str, Any]:
    """CapabilityStatement.rest.security: SMART on FHIR, with the oauth-uris extension (SMART App Launch 2.x)."""
    root = server_root(base)
    return {
        "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                       "extension": [{"url": "token", "valueUri": f"{root}/auth/token"},
                                     {"url": "authorize", "valueUri": f"{root}/auth/authorize"}]}],
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}]}],
        "description": "OAuth 2.0 bearer tokens (JWT) from the trusted issuers; SMART App Launch v2 scopes. "
                       f"Discovery: {base}/.well-known/smart-configuration",
    }


@router.get("/fhir/.well-known/smart-configuration")
@router.get("/.well-known/smart-configuration")
async def discovery(request: Request) -> Response:
    return json_response(smart_configuration(base_url(request)), media_type="application/json")


@router.get("/auth/jwks")
async def jwks(request: Request) -> Response:
    return json_response(request.app.state.keys.jwks(), media_type="application/json")


@router.post("/auth/token")
async def token(request: Request) -> Response:
    """Each request counts against `token` for its address and the client it claims; each failed
    one against `token-failures` too, whose budget, once spent, refuses even a right assertion."""
    return await _oauth_form(request, _grant)


@router.post("/auth/revoke")
async def revoke(request: Request) -> Response:
    """RFC 7009: 200 with an empty body once the token no longer works (or never did); the same
    budgets as the token endpoint, whose client authentication it shares."""
    return await _oauth_form(request, _revoke)


async def _grant(request: Request, form: dict[str, str], token_url: str, base: str) -> dict[str, Any] | None:
    if form.get("grant_type") in GRANT_TYPES:
        answer: dict[str, Any] = await request.app.state.app_tokens.exchange(form, token_url, base)
        return answer
    service: TokenService = request.app.state.token_service
    return await service.client_credentials(form, token_url, base)


async def _revoke(request: Request, form: dict[str, str], token_url: str, base: str) -> dict[str, Any] | None:
    await request.app.state.app_tokens.revoke(form, token_url, request.app.state.tokens, base)
    return None


async def _oauth_form(request: Request,
                      handle: Callable[[Request, dict[str, str], str, str], Awaitable[dict[str, Any] | None]]) -> Response:
    base = base_url(request)
    limiter: Limiter = request.app.state.limiter
    spenders = [f"address {scope_address(request.scope)}"]
    try:
        _spend(limiter, spenders)
        raw = await read_body(request)
        form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        client = claimed_client(form)
        if client is not None:
            spenders.append(f"client {client}")
            _spend(limiter, spenders[1:])
        answer = await handle(request, form, f"{server_root(base)}/auth/token", base)
    except Exceeded as exceeded:
        return too_many(exceeded, request.scope)
    except (OAuthError, UnicodeDecodeError) as error:
        for spender in spenders:
            limiter.count("token-failures", spender)
        status, error_code, description = ((error.status, error.error, error.description) if isinstance(error, OAuthError)
                                           else (400, "invalid_request", "the form body is not UTF-8"))
        return json_response({"error": error_code, "error_description": description}, status,
                             media_type="application/json", headers={"Cache-Control": "no-store"})
    if answer is None:
        return Response(status_code=200, headers={"Cache-Control": "no-store"})
    return json_response(answer, media_type="application/json", headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _spend(limiter: Limiter, spenders: list[str]) -> None:
    for spender in spenders:
        limiter.take("token", spender)
        limiter.check("token-failures", spender)
