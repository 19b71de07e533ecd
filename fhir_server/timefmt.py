"""Instants as stored and compared: UTC ISO strings with a fixed width, so string order is time order."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

# How far ahead of the machine's clock the server lives: set only by tests that need a later day
# (INVISIBLE_PATIENT's month has passed) without waiting for it. Everything that asks "now" here
# (stamps, visibility dates and the rules comparing them, the notification job) moves together,
# so what the server decides stays consistent. Leases and token expiry keep the machine's clock.
CLOCK_OFFSET = timedelta(days=float(os.environ.get("FHIR_CLOCK_OFFSET_DAYS") or 0))


def instant(value: str) -> str:
    """An instant as stored for comparison: a letter first, so the embedded store compares it as
    a string and not through SQLite's datetime(), which drops fractions and rejects suffixes."""
    return "t" + value


def now() -> datetime:
    return datetime.now(timezone.utc) + CLOCK_OFFSET


def now_instant() -> str:
    return format_instant(now())


def format_instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def http_date(instant: str) -> str:
    return format_datetime(parse_instant(instant), usegmt=True)
