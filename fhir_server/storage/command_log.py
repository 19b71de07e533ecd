"""The command recorder (FHIR_COMMAND_LOG, a test and diagnostic setting): every command the
server's PyMongo client starts, one JSON line each, with the request that sent it.

It is how the tests prove, without a cluster, that each patient-scoped request would be routed to
one shard (issue 25, tests/sharding/): a line names the database, the command, its collection and
what a mongos routes by (filter, query, documents, updates, deletes, pipeline), the server code
that sent it, and the request
(`GET /fhir/Observation?patient=...`, `MLLP ORU^R01 <control id>`) from a context variable the
edges set: the audit middleware for HTTP, the MLLP handler for HL7 v2. PyMongo calls a listener
synchronously in the task that sends the command, so the variable is the request's; background
workers (outbox dispatcher, subscription delivery, mail) run in tasks started at start-up and
record None; the audit trail's group commit, which writes several requests' events at once,
records "audit group commit" (fhir_server.audit.writer).

Off by default: with the setting unset no listener is registered and the edges' label costs one
context variable set per request.
"""

from __future__ import annotations

import datetime
import os
import sys
import uuid
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import orjson
from bson import Binary, Decimal128, ObjectId, Regex, Timestamp
from pymongo import monitoring

# What a mongos routes a command by: the rest (lsid, txnNumber, sort, projection...) is not recorded.
ROUTED_BY = ("filter", "query", "documents", "updates", "deletes", "pipeline")
# An insert's document can be a whole resource: its values are cut here, its keys all kept.
LONGEST_TEXT = 200
# The server's frames that sent a command, innermost first, at most this many ("where").
FRAMES = 16
PACKAGE = str(Path(__file__).resolve().parents[1])
PROJECT = str(Path(PACKAGE).parent)

_request: ContextVar[str | None] = ContextVar("command_log_request", default=None)


def attribute(request: str) -> None:
    """Label the commands the current task (and the tasks it starts) sends from now on."""
    _request.set(request)


def current_request() -> str | None:
    return _request.get()


def plain(value: Any) -> Any:
    """`value` as JSON can hold it, each BSON type as a readable scalar: an ObjectId or a date is an
    equality a mongos routes by, so it must not look like an operator (`{"$oid": ...}`) here."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Regex):
        return {"$regex": value.pattern}
    if isinstance(value, (bytes, Binary)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return value if len(value) <= LONGEST_TEXT else value[:LONGEST_TEXT] + "..."
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (ObjectId, Decimal128, Timestamp, uuid.UUID)):
        return str(value)
    return repr(value)


def sent_from() -> list[str]:
    """The server's code on the stack, innermost first, as `path:line function`: an awaiting
    coroutine's callers are on the stack while it runs, so this is the request's code path."""
    frames: list[str] = []
    frame = sys._getframe(1)
    while frame is not None and len(frames) < FRAMES:
        filename = frame.f_code.co_filename
        if filename.startswith(PACKAGE) and filename != __file__:
            frames.append(f"{filename[len(PROJECT) + 1:]}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return frames


class CommandRecorder(monitoring.CommandListener):
    def __init__(self, path: Path) -> None:
        # One write() per line on an O_APPEND file: lines of several server processes (--workers)
        # and of the client's monitoring threads never interleave.
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        name = event.command_name
        target = command.get(name)
        line: dict[str, Any] = {
            "db": event.database_name,
            "command": name,
            "collection": target if isinstance(target, str) else None,
            "request": _request.get(),
            "where": sent_from(),
        }
        for field in ROUTED_BY:
            if field in command:
                line[field] = plain(command[field])
        os.write(self._fd, orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def listeners(path: Path | None) -> list[monitoring.CommandListener]:
    """The client's event listeners: the recorder when FHIR_COMMAND_LOG names a file, else none."""
    return [] if path is None else [CommandRecorder(path)]
