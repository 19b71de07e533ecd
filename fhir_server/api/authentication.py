"""Who is asking, settled once per request before any route runs.

An ASGI middleware reads `Authorization: Bearer`, has the token verified (a dict lookup for a
token seen before) and puts the caller in `request.state.caller`. Without an acceptable token the
request ends here: 401, `WWW-Authenticate: Bearer error=...` and an OperationOutcome. Discovery
(`metadata`, `.well-known/smart-configuration`) and the token endpoint with its keys stay open:
clients find the server and get their tokens through them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.access import patient_scope
from fhir_server.api.caller import request_caller
from fhir_server.api.responses import base_url, outcome_response
from fhir_server.errors import FhirError, Issue, operation_outcome
from fhir_server.security.callers import Caller
from fhir_server.security.scopes import Matcher, authorize
from fhir_server.security.tokens import InvalidToken, TokenVerifier
from fhir_server.web.paths import is_api

OPEN_PATHS = frozenset({
    "/fhir/metadata", "/metadata",
    "/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration",
    "/auth/token", "/auth/revoke", "/auth/jwks",
    # The API's description, as open as the CapabilityStatement (fhir_server.api.openapi).
    "/openapi.json",
    # Probes of load balancers and orchestrators (fhir_server.observability.health).
    "/health/live", "/health/ready",
})
REALM = "fhir-server"


def _unauthorized(error: InvalidToken, scope: Scope) -> Response:
    quoted = error.description.replace("\\", "\\\\").replace('"', "'")
    challenge = f'Bearer realm="{REALM}", error="{error.error}", error_description="{quoted}"'
    body = operation_outcome([Issue("error", "login", f"Authentication required: {error.description}")])
    return outcome_response(scope, body, 401, headers={"WWW-Authenticate": challenge})


# Base URLs by (scheme, Host, root path): built once, as Request.base_url costs more than the token check.
# The Host header is the client's to choose, so the table is bounded.
BASES_KEPT = 64


class Authentication:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._bases: dict[tuple[str, bytes, str], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Pages are for people in a browser, never behind a bearer token (fhir_server.web.paths).
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or not is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            caller = await self._caller(scope)
        except InvalidToken as error:
            await _unauthorized(error, scope)(scope, receive, send)
            return
        # Once per request (a cached caller is shared by requests): whose record patient/ scopes reach.
        caller = await patient_scope.resolve(caller, scope["app"].state.repository)
        if caller.grant is not None:
            # When an app last used what the patient granted (written at most once a minute).
            scope["app"].state.grants.used(caller.grant)
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    async def _caller(self, scope: Scope) -> Caller:
        authorization = None
        host = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"host":
                host = value
        if authorization is None:
            raise InvalidToken("no bearer token (send Authorization: Bearer <token>)")
        method, _, token = authorization.partition(" ")
        token = token.strip()
        if method.lower() != "bearer" or not token:
            raise InvalidToken("the Authorization header is not 'Bearer <token>'")
        verifier: TokenVerifier = scope["app"].state.tokens
        key = (scope["scheme"], host, scope.get("root_path", ""))
        base = self._bases.get(key)
        if base is None:
            if len(self._bases) >= BASES_KEPT:
                self._bases.clear()
            base = self._bases[key] = base_url(Request(scope))
        return verifier.cached(token, base) or await verifier.verify(token, base)


def permit(request: Request, interaction: str, resource_type: str, *, criteria: list[tuple[str, str]] | None = None,
           resource: dict | None = None) -> None:
    """The scope decision for what this request asks (fhir_server.security.scopes.authorize)."""
    matcher: Matcher = request.app.state.scope_matcher
    authorize(request_caller(request), interaction, resource_type, criteria=criteria, resource=resource, matcher=matcher)


def require_system(request: Request, what: str) -> None:
    """Intake endpoints take documents from registered systems (or the platform), not from people,
    with write scopes; each resource the document becomes is then authorised as it is written."""
    who = request_caller(request)
    if who.kind not in ("system", "platform"):
        raise FhirError(403, "forbidden", f"{what} takes documents from a system client (SMART Backend Services)")
    if not any(s.context == "system" and "c" in s.letters for s in who.scopes.resource):
        raise FhirError(403, "forbidden", f"{what} needs system/ write scopes (e.g. system/DocumentReference.c)")
