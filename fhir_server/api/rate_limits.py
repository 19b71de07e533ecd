"""Rate limits at the HTTP edge (fhir_server.limits counts): 429 Too Many Requests with
`Retry-After` and an OperationOutcome (issue type `throttled`).

Two ASGI middlewares around authentication, both inside the audit trail so every refusal is an
AuditEvent like any refused request (fhir_server.audit.middleware):
- `AddressLimits`, before authentication: every request from an address (token guessing and
  floods of 401s included) counts against `api-address`; the token endpoint counts against its
  own rules in its route (fhir_server.api.auth_routes). The discovery documents (metadata, SMART
  configuration, JWKS) are not counted: public, cheap and carrying nothing of anyone, they are not
  audited either, and a refusal that leaves no AuditEvent is not one this server makes.
- `CallerLimits`, after it: every authenticated request counts against `api-client`, keyed by the
  client (system callers) or the person (practitioner, patient) the token names.

The address is the peer address, or the one a proxy the server trusts forwarded (uvicorn's
forwarded-allow-ips decides; the middlewares see only the result).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.api.authentication import OPEN_PATHS
from fhir_server.api.responses import outcome_response
from fhir_server.errors import Issue, operation_outcome
from fhir_server.limits import Exceeded, Limiter, address_key
from fhir_server.security.callers import Caller


def too_many(exceeded: Exceeded, scope: Scope) -> Response:
    body = operation_outcome([Issue("error", "throttled", "Too many requests: the budget of this caller or address "
                                    f"is spent; retry in {exceeded.retry_after} s")])
    return outcome_response(scope, body, 429, headers={"Retry-After": str(exceeded.retry_after)})


def scope_address(scope: Scope) -> str:
    client = scope.get("client")
    return address_key(client[0] if client else None)


def caller_key(caller: Caller) -> str:
    """Who spends a budget: the client a system token names, else the person, else the subject."""
    return f"{caller.kind} {caller.client_id or caller.idnatps or caller.ins or caller.id}"


def _limiter(scope: Scope) -> Limiter:
    return scope["app"].state.limiter  # type: ignore[no-any-return]


class _Limits:
    """A budget taken per request before the inner app runs: `who` names what it is counted by
    (None: not counted)."""
    rule: str
    who: Callable[[Scope], str | None]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: the budget is taken at once, and the inner app's own coroutine is
        # handed back, so this layer adds no frame to every resumption of the request's task.
        key = self.who(scope) if scope["type"] == "http" else None
        if key is not None:
            try:
                _limiter(scope).take(self.rule, key)
            except Exceeded as exceeded:
                return too_many(exceeded, scope)(scope, receive, send)
        return self.app(scope, receive, send)


class AddressLimits(_Limits):
    rule = "api-address"

    @staticmethod
    def who(scope: Scope) -> str | None:
        return scope_address(scope) if scope["path"] not in OPEN_PATHS else None


class CallerLimits(_Limits):
    rule = "api-client"

    @staticmethod
    def who(scope: Scope) -> str | None:
        caller = scope.get("state", {}).get("caller")
        return caller_key(caller) if caller is not None else None
