"""An event's line is the same whether it is written straight to the configured handler (the
access line of every request) or goes through a log record (any other handler on the way)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from fhir_server.observability import logs

FIELDS = {"method": "GET", "path": "/fhir/Patient/1", "status": 200, "query": None, "duration_ms": 1.5}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    kept = (list(root.handlers), root.level)
    written = io.StringIO()
    logs.configure("info", "json", written)
    yield written
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in kept[0]:
        root.addHandler(handler)
    root.setLevel(kept[1])
    logs._installed = None


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _line(written: io.StringIO) -> dict[str, object]:
    *_, last = written.getvalue().splitlines()
    line = json.loads(last)
    assert isinstance(line, dict)
    return line


def test_a_line_written_straight_is_the_line_a_record_would_have_made(stream: io.StringIO) -> None:
    access = logging.getLogger("tests.access")
    made = logging.getLogRecordFactory()
    records: list[logging.LogRecord] = []

    def counted(*args: object, **kwargs: object) -> logging.LogRecord:
        records.append(made(*args, **kwargs))
        return records[-1]

    root = logging.getLogger()
    # pytest's own capture handlers, added around each test's call, stand on the way too.
    capture = [h for h in root.handlers if h is not logs._installed]
    for handler in capture:
        root.removeHandler(handler)
    logging.setLogRecordFactory(counted)
    try:
        logs.event(access, "request", **FIELDS)
    finally:
        logging.setLogRecordFactory(made)
        for handler in capture:
            root.addHandler(handler)
    # Nothing but the configured handler on the way: no record was made (the cost it saves).
    assert records == []
    straight = _line(stream)
    # A handler on the way: the record path, which the capture sees and which still reaches the stream.
    kept = Kept()
    access.addHandler(kept)
    try:
        logs.event(access, "request", **FIELDS)
    finally:
        access.removeHandler(kept)
    [record] = kept.records
    through_a_record = _line(stream)
    assert record.getMessage() == "request"
    assert {k: v for k, v in straight.items() if k != "time"} == {k: v for k, v in through_a_record.items() if k != "time"}
    assert straight["logger"] == "tests.access" and straight["level"] == "info" and "query" not in straight
    assert straight["status"] == 200 and isinstance(straight["pid"], int)


def test_a_level_below_the_configured_one_writes_nothing(stream: io.StringIO) -> None:
    logs.event(logging.getLogger("tests.access"), "noise", logging.DEBUG, detail=1)
    assert stream.getvalue() == ""
