"""The browser session and its CSRF token, and the one way pages set a cookie.

A session is a random id in a cookie, made on a browser's first page. Its CSRF token is the HMAC
of that id under a server secret (fhir_server.security.server_keys, `csrf`): every form carries
it, every unsafe request to a page must send it back (OWASP's signed double-submit cookie, tied to
the session). Another site cannot read the page to learn the token, cannot compute it without the
secret, and with SameSite=Lax its cross-site POST does not even carry the cookie. Over HTTPS the
cookie is `__Host-session`: Secure, no Domain, Path=/, so neither plain HTTP nor a sibling
subdomain can plant or overwrite it.

Issue 19's sign-in keys what it knows of the signed-in person by this id, and gives the browser a
new one when someone signs in (ASVS 3.2.1), through `new_session_id` and `cookie`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

SESSION_COOKIE = "session"
SECURE_SESSION_COOKIE = "__Host-session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"x-csrf-token"
# The secret's name among the server's secrets.
CSRF_KEY = "csrf"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def session_cookie_name(secure: bool) -> str:
    return SECURE_SESSION_COOKIE if secure else SESSION_COOKIE


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def well_formed(session_id: str | None) -> bool:
    return session_id is not None and _SESSION_ID.fullmatch(session_id) is not None


def cookie(name: str, value: str, *, secure: bool, max_age: int | None = None) -> tuple[bytes, bytes]:
    """A Set-Cookie header: never readable by scripts, never sent on another site's POST, Secure
    whenever the request came over HTTPS (directly, or through a proxy the operator trusts).
    Without `max_age` it lasts as long as the browser session."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


class CsrfTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, session_id: str) -> str:
        digest = hmac.new(self._secret, b"csrf\x00" + session_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def valid(self, session_id: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.token(session_id).encode(), token.encode("utf-8"))
