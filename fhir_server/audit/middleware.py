"""The one place HTTP interactions are audited: an ASGI middleware outside authentication.

It sees every request, refused ones included (401 before any caller exists, 403, hidden 404s), on
every route (FHIR, MHD, /ingest/*). It starts the request's trace, lets the application run, and
when the application starts its answer it holds that answer back until the AuditEvents are
stored (fhir_server.audit.writer). If they cannot be, the client gets 503 with an
OperationOutcome instead, and none of the data (../shared/DECISIONS.md, "Audit and outbox").

Discovery documents (CapabilityStatement, SMART configuration, the signing keys) are public and
carry nothing of anyone: they are not audited.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.api.authentication import OPEN_PATHS
from fhir_server.api.responses import json_response
from fhir_server.audit import trace as tracing
from fhir_server.audit.events import Interaction, build
from fhir_server.audit.interactions import SEARCHES, classify
from fhir_server.audit.store import AuditUnavailable
from fhir_server.audit.writer import AuditWriter
from fhir_server.errors import Issue, operation_outcome
from fhir_server.security.redaction import redacted_query
from fhir_server.storage import command_log
from fhir_server.timefmt import now_instant
from fhir_server.web.paths import is_api

log = logging.getLogger("fhir_server.audit")
TOKEN_PATH = "/auth/token"
# Scrapes of /metrics, every few seconds, carry counts of no one (fhir_server.observability.metrics).
UNAUDITED = OPEN_PATHS - {TOKEN_PATH} | {"/metrics"}


def _unavailable() -> Any:
    body = operation_outcome([Issue("fatal", "transient",
                                    "The access could not be written to the audit trail; nothing was returned. Retry later.")])
    return json_response(body, 503, headers={"Retry-After": "1"})


def _interaction(scope: Scope, status: int, caller: Any, search_body: bytes) -> Interaction:
    method, path = scope["method"], scope["path"]
    # A credential sent in the URL is not kept (fhir_server.security.redaction).
    query_string = redacted_query(scope.get("query_string") or b"")
    kind = "login" if path == TOKEN_PATH or (status == 401 and caller is None) else classify(method, path)
    query = None
    if kind in SEARCHES:
        query = query_string + (b"&" if query_string and search_body else b"") + redacted_query(search_body)
    what = f"{method} {path}" + (f"?{query_string.decode('latin-1')}" if query_string else "")
    client = scope.get("client")
    return Interaction(kind, what, query, address=client[0] if client else None)


class AuditTrail:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query_string = redacted_query(scope.get("query_string") or b"")
            command_log.attribute(f"{scope['method']} {scope['path']}"
                                  + (f"?{query_string.decode('latin-1')}" if query_string else ""))
        # Pages (fhir_server.web.paths) reach no record by themselves: what they do to one goes
        # through the repository's audit hooks.
        if scope["type"] != "http" or scope["path"] in UNAUDITED or not is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        writer: AuditWriter = scope["app"].state.audit_writer
        started = now_instant()
        trace = tracing.begin()
        search_body = bytearray()
        keeps_body = scope["method"] == "POST" and scope["path"].endswith("/_search")
        replaced = False
        answered = False

        async def receive_kept() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                search_body.extend(message.get("body", b""))
            return message

        async def audit(status: int) -> None:
            caller = scope.get("state", {}).get("caller")
            interaction = _interaction(scope, status, caller, bytes(search_body))
            await writer.write(build(interaction, caller, status, trace, started, written_kept=status < 400))

        async def send_audited(message: Message) -> None:
            nonlocal replaced, answered
            if message["type"] == "http.response.start":
                answered = True
                try:
                    await audit(message["status"])
                except AuditUnavailable as exc:
                    log.error("audit trail unavailable, %s %s answered 503: %s", scope["method"], scope["path"], exc)
                    replaced = True
                    await _unavailable()(scope, receive, send)
                    return
            elif replaced:
                return
            await send(message)

        try:
            await self.app(scope, receive_kept if keeps_body else receive, send_audited)
        except Exception:
            if not answered:
                try:
                    await audit(500)
                except AuditUnavailable as exc:
                    log.error("audit trail unavailable for a failed request: %s", exc)
            raise
