"""Credentials a client may put in a URL, hidden before the URL is written anywhere.

The server reads bearer tokens from the Authorization header only and client assertions from the
token endpoint's form body, neither of which is recorded. But a client may still send
`?access_token=...` (RFC 6750 section 2.3, which this server does not accept) or an assertion in
the query string, and the audit trail and the command log record request URLs: there, the values
of these parameters become `REDACTED`, whatever their case or percent-encoding.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

# OAuth 2.0 / OpenID Connect / RFC 7523 parameters whose value is a credential.
SECRET_PARAMETERS = frozenset({
    b"access_token", b"refresh_token", b"id_token", b"client_assertion", b"client_secret", b"code", b"assertion",
})
HIDDEN = b"REDACTED"


def redacted_query(query: bytes) -> bytes:
    """The query string with the values of credential parameters replaced; the rest as sent."""
    if not query:
        return query
    parts = []
    for part in query.split(b"&"):
        name, equals, _ = part.partition(b"=")
        if equals and unquote_to_bytes(name.replace(b"+", b" ")).strip().lower() in SECRET_PARAMETERS:
            part = name + b"=" + HIDDEN
        parts.append(part)
    return b"&".join(parts)
