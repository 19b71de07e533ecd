"""Logging of the server: every logger (ours, uvicorn's, the libraries') through one handler on
stderr, at one level, as JSON lines or as text for people.

An event is a log record with fields (`event(logger, "request", method=..., status=...)`): in JSON
they are keys of the line, in text `key=value` pairs after the message. Every line written while a
request or an MLLP message is handled carries its `request_id` (fhir_server.observability.context).

What never goes into a line: a token, a patient's name or INS. The edges log what they know to be
safe (method, path, parameter names without values, status, caller kind and a non-identifying id);
the rest of the server logs messages written for operators, which name resources by id.
"""

from __future__ import annotations

import abc
import logging
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

from fhir_server.observability import context

LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
          "info": logging.INFO, "debug": logging.DEBUG}
# uvicorn configures these itself unless told not to (serve passes log_config=None): they are
# brought under the root's handler and level here instead.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
FIELDS = "fields"
# The handler `configure` put on the root logger, which `event` may write to directly.
_installed: logging.StreamHandler[TextIO] | None = None


def event(logger: logging.Logger, name: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """One line saying `name` happened, with `fields` (None values left out)."""
    if not logger.isEnabledFor(level):
        return
    kept = {k: v for k, v in fields.items() if v is not None}
    handler = _straight(logger, level)
    if handler is not None:
        # The line a record would have become, without the record: building and routing one was
        # most of the 26 us the access line cost each request (issue 18). Any trouble, and the
        # record goes the usual way, which reports it.
        formatter = handler.formatter
        assert isinstance(formatter, _Lines)
        text = formatter.line(time.time(), level, logger.name, name, kept)
        handler.acquire()
        try:
            handler.stream.write(text + handler.terminator)
            handler.stream.flush()
            return
        except Exception:  # noqa: BLE001 - the usual path below handles and reports it
            pass
        finally:
            handler.release()
    logger.log(level, name, extra={FIELDS: kept})


def _straight(logger: logging.Logger, level: int) -> logging.StreamHandler[TextIO] | None:
    """The handler `configure` installed, when a record of `logger` at `level` would reach it and
    nothing else: no other handler or filter on the way (a test's log capture, say)."""
    handler = _installed
    if handler is None or handler.filters or level < handler.level:
        return None
    current = logger
    while current.parent is not None:
        if current.handlers or current.filters or not current.propagate:
            return None
        current = current.parent
    return handler if current.handlers == [handler] and not current.filters else None


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Lines(logging.Formatter, abc.ABC):
    """A line from what a record holds: `format` makes a record's, `line` one without a record."""

    def format(self, record: logging.LogRecord) -> str:
        return self.line(record.created, record.levelno, record.name, record.getMessage(),
                         getattr(record, FIELDS, None) or {},
                         self.formatException(record.exc_info) if record.exc_info else None)

    @abc.abstractmethod
    def line(self, created: float, level: int, name: str, message: str, fields: dict[str, Any],
             exception: str | None = None) -> str:
        """The line of an event, in this formatter's format."""


class JsonFormatter(_Lines):
    def line(self, created: float, level: int, name: str, message: str, fields: dict[str, Any],
             exception: str | None = None) -> str:
        line: dict[str, Any] = {"time": _timestamp(created), "level": logging.getLevelName(level).lower(),
                                "logger": name, "message": message, "pid": os.getpid()}
        request_id = context.current()
        if request_id is not None:
            line["request_id"] = request_id
        line.update(fields)
        if exception is not None:
            line["exception"] = exception
        return orjson.dumps(line, default=str).decode()


class TextFormatter(_Lines):
    def line(self, created: float, level: int, name: str, message: str, fields: dict[str, Any],
             exception: str | None = None) -> str:
        request_id = context.current()
        if request_id is not None:
            fields = {"request_id": request_id, **fields}
        text = f"{_timestamp(created)} {logging.getLevelName(level)} {name}: {message}"
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if exception is not None:
            text += "\n" + exception
        return text


def json_wanted(log_format: str, stream: TextIO) -> bool:
    """auto: text on a terminal (a person reads), JSON otherwise (a collector reads)."""
    if log_format == "auto":
        try:
            return not os.isatty(stream.fileno())
        except (AttributeError, OSError, ValueError):
            return True
    return log_format == "json"


def configure(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Every logger of the process at `level`, in `log_format`, on `stream` (stderr)."""
    stream = stream or sys.stderr
    global _installed
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_wanted(log_format, stream) else TextFormatter())
    _installed = handler
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
