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

import logging
import os
import sys
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


def event(logger: logging.Logger, name: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """One line saying `name` happened, with `fields` (None values left out)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={FIELDS: {k: v for k, v in fields.items() if v is not None}})


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _timestamp(record), "level": record.levelname.lower(),
                                "logger": record.name, "message": record.getMessage(), "pid": record.process}
        request_id = context.current()
        if request_id is not None:
            line["request_id"] = request_id
        line.update(getattr(record, FIELDS, None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, FIELDS, None) or {})
        request_id = context.current()
        if request_id is not None:
            fields = {"request_id": request_id, **fields}
        text = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
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
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_wanted(log_format, stream) else TextFormatter())
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
