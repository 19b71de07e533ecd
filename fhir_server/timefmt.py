"""Instants as stored and compared: UTC ISO strings with a fixed width, so string order is time order."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

# How far ahead of the machine's clock the server lives: set only by tests that need a later day
# (INVISIBLE_PATIENT's month has passed) without waiting for it. Everything that asks "now" here
# (stamps, visibility dates and the rules comparing them, the notification job, the record
# lifecycle) moves together, so what the server decides stays consistent. Leases and token
# expiry keep the machine's clock.
CLOCK_OFFSET = timedelta(days=float(os.environ.get("FHIR_CLOCK_OFFSET_DAYS") or 0))
# Tests only, never set in production: a file holding a number of days that replaces
# FHIR_CLOCK_OFFSET_DAYS while it exists, read again whenever it changes, so a test moves a
# RUNNING server's time (six weeks, ten years) by writing it, and every process of the server
# reads the same file. Unset (the default), "now" costs no file system call.
CLOCK_FILE = os.environ.get("FHIR_CLOCK_FILE") or None
# (the file's inode and modification time, the offset it held): a test replaces the file by a
# rename, so a new inode tells a change even within the file system's timestamp granularity.
_clock_read: tuple[tuple[int, int], timedelta] = ((-1, -1), CLOCK_OFFSET)


def _offset() -> timedelta:
    global _clock_read
    if CLOCK_FILE is None:
        return CLOCK_OFFSET
    try:
        found = os.stat(CLOCK_FILE)
    except OSError:
        return CLOCK_OFFSET
    changed = (found.st_ino, found.st_mtime_ns)
    if changed != _clock_read[0]:
        try:
            with open(CLOCK_FILE, encoding="ascii") as file:
                _clock_read = (changed, timedelta(days=float(file.read().strip() or 0)))
        except (OSError, ValueError):
            # Half-written by the test that moves it: the previous offset until it is whole.
            return _clock_read[1]
    return _clock_read[1]


def instant(value: str) -> str:
    """An instant as stored for comparison: a letter first, so the embedded store compares it as
    a string and not through SQLite's datetime(), which drops fractions and rejects suffixes."""
    return "t" + value


def now() -> datetime:
    return datetime.now(timezone.utc) + _offset()


def now_instant() -> str:
    return format_instant(now())


# `format_instant`'s shape; strptime took 6 us to read it, a read's Last-Modified among others (issue 18).
INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def format_instant(moment: datetime) -> str:
    # isoformat ends in +00:00 once in UTC; a third cheaper than strftime.
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_instant(value: str) -> datetime:
    """An instant written by `format_instant`; anything else is a ValueError, as strptime said."""
    if INSTANT.fullmatch(value) is None:
        raise ValueError(f"not an instant of this server: {value[:40]!r}")
    return datetime.fromisoformat(value)


def http_date(instant: str) -> str:
    return format_datetime(parse_instant(instant), usegmt=True)
