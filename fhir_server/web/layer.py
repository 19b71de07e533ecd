"""The page layer: what every response outside the API gets, whoever wrote the page.

For each request to a page (fhir_server.web.paths: anything but the API) it
- settles the browser session (fhir_server.web.session), making one on a first visit, and puts
  the session, its CSRF token and the request's cookies in `scope["state"]` for the page;
- refuses an unsafe method (POST, PUT, PATCH, DELETE) whose CSRF token, in the `csrf_token` form
  field or the `X-CSRF-Token` header, is missing or not the session's: 403 and a page saying so,
  before any page code runs; a form body is read here (at most FORM_MAX_BYTES) and handed on whole;
- adds to every answer, refusals and errors included: a Content-Security-Policy that allows no
  inline script or style and no framing (a page may let its form lead to other origins by putting
  them in `scope["state"]["form_targets"]`), X-Frame-Options DENY for older browsers, Referrer-Policy
  no-referrer, X-Content-Type-Options nosniff, Cache-Control no-store unless the page set its own
  (pages carry the session's token), and the new session's cookie.

Pure ASGI, like the rest of the stack: API requests pass with one prefix test.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from urllib.parse import parse_qsl

from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.web.paths import is_api
from fhir_server.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    CsrfTokens,
    cookie,
    new_session_id,
    session_cookie_name,
    well_formed,
)
from fhir_server.web.templates import MESSAGES, language, render

log = logging.getLogger("fhir_server.web")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The largest form body a page takes: sign-in, consent and settings forms are a few hundred bytes.
FORM_MAX_BYTES = 64 * 1024
CONTENT_SECURITY_POLICY = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           b"object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]
LAYER_NAMES = frozenset(name for name, _ in HEADERS)


def message_page(scope: Scope, status: int, key: str) -> HTMLResponse:
    """A short page in the reader's language: `key`_title and `key`_text of messages.json."""
    words = MESSAGES[language(scope)]
    return render(scope, "message.html", status, heading=words[f"{key}_title"], text=words[f"{key}_text"])


def _with_form_targets(headers: list[tuple[bytes, bytes]], targets: list[str]) -> list[tuple[bytes, bytes]]:
    """The headers with a CSP whose form-action also allows these origins: a page whose form's
    answer redirects to another site (issue 19's consent page, to the app; browsers hold the
    redirect to form-action). The origins are the server's own data (registered redirect URIs)."""
    allowed = b" ".join(target.encode("ascii") for target in targets if target.isascii() and " " not in target
                        and ";" not in target)
    policy = CONTENT_SECURITY_POLICY.replace(b"form-action 'self'", b"form-action 'self' " + allowed)
    return [(name, policy if name == b"content-security-policy" else value) for name, value in headers]


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body.extend(message.get("body", b""))
        if len(body) > FORM_MAX_BYTES:
            raise _TooLarge
        if not message.get("more_body", False):
            return bytes(body)


def _sent_token(scope: Scope, body: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == CSRF_HEADER:
            return value.decode("latin-1")
    for name, value in scope["headers"]:
        if name == b"content-type" and value.split(b";")[0].strip().lower() == b"application/x-www-form-urlencoded":
            try:
                return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)).get(CSRF_FIELD)
            except UnicodeDecodeError:
                return None
    return None


class PageLayer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # API requests get the inner app's own coroutine: no frame of this layer in their task.
        if scope["type"] != "http" or is_api(scope["path"]):
            return self.app(scope, receive, send)
        return self._page(scope, receive, send)

    async def _page(self, scope: Scope, receive: Receive, send: Send) -> None:
        secure = scope["scheme"] == "https"
        cookies: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookies.update(cookie_parser(value.decode("latin-1")))
        cookie_name = session_cookie_name(secure)
        session = cookies.get(cookie_name)
        fresh = not well_formed(session)
        if fresh:
            session = new_session_id()
        assert session is not None
        csrf: CsrfTokens = scope["app"].state.csrf
        state = scope.setdefault("state", {})
        state.update(session=session, csrf_token=csrf.token(session), cookies=cookies)
        added = HEADERS + ([cookie(cookie_name, session, secure=secure)] if fresh else [])

        async def send_with_layer(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(name, value) for name, value in message.get("headers", []) if name not in LAYER_NAMES]
                if not any(name == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                targets = state.get("form_targets")
                message = {**message, "headers": headers + (_with_form_targets(added, targets) if targets else added)}
            await send(message)

        if scope["method"] not in SAFE_METHODS:
            try:
                body = await _read_body(receive)
            except _TooLarge:
                await message_page(scope, 413, "too_large")(scope, receive, send_with_layer)
                return
            if fresh or not csrf.valid(session, _sent_token(scope, body)):
                client = scope.get("client")
                why = "no session cookie" if fresh else "token missing or not the session's"
                log.warning("CSRF refusal: %s %s from %s (%s)", scope["method"], scope["path"],
                            client[0] if client else "?", why)
                await message_page(scope, 403, "refused")(scope, receive, send_with_layer)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send_with_layer)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read here, then the client's own messages (its disconnect, when it goes)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
