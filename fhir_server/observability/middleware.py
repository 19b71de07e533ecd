"""The outermost middleware (fhir_server.app): the request id, the access log line and the request
metrics, in one pure ASGI pass around everything else, refusals of every inner layer included.

Per request: the id from `X-Request-ID` (or a new one) is set for the request's task and returned
in the same header; when the answer is over, one `request` line (fhir_server.access) and the
request counters. The line has the path but, of the query, only the parameter names: values carry
identifiers (an INS in `identifier=`, a name in `name=`), and a credential a client wrongly put in
the URL. Labels of the metrics are bounded: the interaction and the resource type read from the
route, never the raw path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.audit.interactions import classify
from fhir_server.definitions import structure
from fhir_server.observability import context, metrics
from fhir_server.observability.logs import event
from fhir_server.security.callers import Caller

log = logging.getLogger("fhir_server.access")
HEADER = context.HEADER.lower().encode()
RESOURCE_TYPES = structure.resource_types()
# Query parameter names are the client's to choose: a line keeps this many, each this long at most.
MOST_PARAMETERS = 32
LONGEST_NAME = 64


def parameter_names(query_string: bytes) -> str | None:
    """The names of the query's parameters, in order, without their values."""
    if not query_string:
        return None
    names = [part.partition(b"=")[0][:LONGEST_NAME].decode("latin-1") for part in query_string.split(b"&") if part]
    return ",".join(dict.fromkeys(names[:MOST_PARAMETERS])) or None


def caller_id(caller: Caller) -> str | None:
    """Who called, without identifying a patient: a patient's token names their INS, which no log
    line may hold; their record's Patient id ties the line to the audit trail instead."""
    if caller.kind == "patient":
        return f"Patient/{caller.record_patient}" if caller.record_patient else None
    if caller.kind == "practitioner":
        return caller.idnatps or caller.id
    return caller.client_id or caller.id


def route_labels(scope: Scope) -> tuple[str, str]:
    """The interaction and resource type of a request: bounded values (metrics labels)."""
    path: str = scope["path"]
    if path.startswith("/fhir"):
        first = path[6:].split("/", 1)[0]
        return classify(scope["method"], path), first if first in RESOURCE_TYPES else ""
    route = scope.get("route")
    return (getattr(route, "path", None) or "unmatched"), ""


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = next((value for name, value in scope["headers"] if name == HEADER), None)
        request_id = context.accepted_or_new(sent)
        context.begin(request_id)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        header = (HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        interaction, resource_type = route_labels(scope)
        observed = metrics.current()
        if observed is not None:
            observed.request(interaction, resource_type, status, seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        caller: Any = (scope.get("state") or {}).get("caller")
        event(log, "request", method=scope["method"], path=scope["path"],
              query=parameter_names(scope.get("query_string") or b""), status=status,
              duration_ms=round(seconds * 1000, 2), interaction=interaction, type=resource_type or None,
              caller_kind=caller.kind if caller is not None else None,
              caller_id=caller_id(caller) if caller is not None else None)
