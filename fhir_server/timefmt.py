"""Instants as stored and compared: UTC ISO strings with a fixed width, so string order is time order."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime


def instant(value: str) -> str:
    """An instant as stored for comparison: a letter first, so the embedded store compares it as
    a string and not through SQLite's datetime(), which drops fractions and rejects suffixes."""
    return "t" + value


def now_instant() -> str:
    return format_instant(datetime.now(timezone.utc))


def format_instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def http_date(instant: str) -> str:
    return format_datetime(parse_instant(instant), usegmt=True)
