"""CORS for browser apps calling the API (FHIR, discovery, the token endpoint) from another origin.

Only the origins `allowed_origins` returns get CORS headers; any other origin gets none, so its
browser keeps the answer from its script. The API authenticates with bearer tokens, never cookies:
`Access-Control-Allow-Credentials` is never sent, and neither is `*`. Pages get no CORS at all.

Pure ASGI and outermost (fhir_server/app.py): the 401 of a missing token and the 503 of an
unavailable audit trail carry the headers too, so the app can read why it was refused; a
preflight is answered here, before authentication (which would refuse it: a browser sends no
token on a preflight) and unaudited (it reads and writes nothing). A request without an `Origin`
header, as every non-browser client sends, costs one pass over its header list and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import urlsplit

from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.api.responses import json_response
from fhir_server.errors import Issue, operation_outcome
from fhir_server.web.paths import is_api

# What FHIR and SMART clients send (FHIR R4 http.html: conditional interactions, Prefer, the custom
# X-Request-Id; RFC 6749: the token request), and the response headers they read (ETag and Location of a create or
# update, Content-Location of an async answer, WWW-Authenticate and Retry-After of a refusal).
ALLOW_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOW_HEADERS = (b"Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, "
                 b"If-Modified-Since, Prefer, X-Request-Id")
EXPOSE_HEADERS = b"ETag, Location, Content-Location, Last-Modified, WWW-Authenticate, Retry-After"
# How long a browser may keep a preflight's answer (seconds); Chromium keeps at most 7200.
MAX_AGE = b"600"


class CorsSettingsInvalid(ValueError):
    """FHIR_CORS_ORIGINS names something that is not an origin; the message is one line for the operator."""


def parse_origins(text: str | None) -> frozenset[str]:
    """The origins of FHIR_CORS_ORIGINS (comma-separated `scheme://host[:port]`), serialised as
    browsers send them in `Origin` (lower case, no default port, no path)."""
    origins = set()
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item == "*" or "*" in item:
            raise CorsSettingsInvalid("FHIR_CORS_ORIGINS: '*' is refused; name each origin (https://app.example.org)")
        parts = urlsplit(item)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/")
                or parts.query or parts.fragment or parts.username or port == -1):
            raise CorsSettingsInvalid(f"FHIR_CORS_ORIGINS: {item!r} is not an origin (scheme://host[:port], no path)")
        default = {"http": 80, "https": 443}[parts.scheme]
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        origins.add(f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else ""))
    return frozenset(origins)


def allowed_origins(state: State) -> frozenset[str]:
    """The origins browsers may call the API from: FHIR_CORS_ORIGINS, and the origins of referenced
    apps' redirect URIs (kept in memory by the app registry, fhir_server.apps.registry, reloaded
    every second), so this stays a set lookup per request."""
    configured: frozenset[str] = state.cors_origins
    apps = getattr(state, "apps", None)
    return configured | apps.origins if apps is not None and apps.origins else configured


def _refused_preflight() -> ASGIApp:
    body = operation_outcome([Issue("error", "forbidden", "This origin may not call the API from a browser "
                                                          "(the server's FHIR_CORS_ORIGINS does not name it)")])
    return json_response(body, 403)


class Cors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Without an Origin the inner app's own coroutine is handed back: no frame of this layer
        # in the request's task.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        origin = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
        if origin is None or not is_api(scope["path"]):
            return self.app(scope, receive, send)
        return self._browser(scope, receive, send, origin, preflight)

    async def _browser(self, scope: Scope, receive: Receive, send: Send, origin: bytes, preflight: bool) -> None:
        allowed = origin.decode("latin-1") in allowed_origins(scope["app"].state)
        if preflight and scope["method"] == "OPTIONS":
            if not allowed:
                await _refused_preflight()(scope, receive, send)
                return
            await send({"type": "http.response.start", "status": 204, "headers": [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-methods", ALLOW_METHODS),
                (b"access-control-allow-headers", ALLOW_HEADERS),
                (b"access-control-max-age", MAX_AGE),
                (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            ]})
            await send({"type": "http.response.body", "body": b""})
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(name, value) for name, value in message.get("headers", [])
                           if name not in (b"access-control-allow-origin", b"vary")]
                vary = [value for name, value in message.get("headers", []) if name == b"vary"]
                headers += [(b"access-control-allow-origin", origin),
                            (b"access-control-expose-headers", EXPOSE_HEADERS),
                            (b"vary", b", ".join([*vary, b"Origin"]))]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)
