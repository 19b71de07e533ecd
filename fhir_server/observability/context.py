"""The request id: taken from `X-Request-ID` when the caller sends a usable one, made otherwise,
and held in a context variable for the request's task, so every log line and OperationOutcome of
that request carries it without being handed it."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

HEADER = "X-Request-ID"
# Long enough for a UUID, a trace id or a proxy's own ids; only characters that cannot break a log
# line, a header or a JSON string. Anything else is replaced by an id of the server's.
ACCEPTED = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accepted_or_new(sent: bytes | None) -> str:
    """The caller's id if it is usable, else a new one."""
    if sent is not None:
        text = sent.decode("latin-1")
        if ACCEPTED.fullmatch(text):
            return text
    # 128 random bits as 32 hex digits, like a UUID4's hex without making the UUID (2 us a request).
    return os.urandom(16).hex()


def begin(request_id: str) -> None:
    """The id of what this task handles from now on (a request, an MLLP message)."""
    _current.set(request_id)


def current() -> str | None:
    return _current.get()
