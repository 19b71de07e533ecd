"""Date search values as UTC ranges (FHIR R4 search.html#date).

Every date, dateTime, instant and Period becomes `{"l": lo, "h": hi}`, the instants it covers at its
precision, written `YYYY-MM-DDTHH:MM:SS.ffffffZ` so that string order is time order.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Iterable

LOWEST = "0001-01-01T00:00:00.000000Z"
HIGHEST = "9999-12-31T23:59:59.999999Z"
_ONE_MICROSECOND = timedelta(microseconds=1)

_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def format_utc(moment: datetime) -> str:
    # strftime("%Y") does not zero-pad years before 1000 on every platform.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
        f"{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def _shift(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment + delta
    except OverflowError:
        return datetime.min if delta < timedelta(0) else datetime.max


@lru_cache(maxsize=8192)
def parse_range(value: str) -> tuple[str, str]:
    """Lowest and highest UTC instant covered by a FHIR date/dateTime/instant or a search value.

    `2024-03` -> 2024-03-01T00:00:00.000000Z .. 2024-03-31T23:59:59.999999Z; a time without zone is
    taken as UTC. Raises ValueError for anything else.
    """
    match = _DATE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"not a FHIR date or dateTime: {value!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    y = int(year)
    if month is None:
        lo = datetime(y, 1, 1)
        end = datetime(y + 1, 1, 1) if y < 9999 else None
    elif day is None:
        m = int(month)
        lo = datetime(y, m, 1)
        end = None if (y, m) == (9999, 12) else (datetime(y + 1, 1, 1) if m == 12 else datetime(y, m + 1, 1))
    else:
        lo = datetime(y, int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
        if hour is None:
            step = timedelta(days=1)
        elif minute is None:
            step = timedelta(hours=1)
        elif second is None:
            step = timedelta(minutes=1)
        elif fraction is None:
            step = timedelta(seconds=1)
        else:
            digits = fraction[:6]
            lo = lo.replace(microsecond=int(digits.ljust(6, "0")))
            step = timedelta(microseconds=10 ** (6 - len(digits)))
        end = None if lo > datetime.max - step else lo + step
    hi = datetime.max if end is None else end - _ONE_MICROSECOND
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * sign
        lo, hi = _shift(lo, -offset), _shift(hi, -offset)
    return format_utc(lo), format_utc(hi)


def _ranges(fhir_type: str | None, value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        try:
            yield parse_range(value)
        except ValueError:
            return
    elif isinstance(value, dict):
        if fhir_type == "Timing" or (fhir_type is None and "event" in value):
            for event in value.get("event") or ():
                yield from _ranges("dateTime", event)
        elif "start" in value or "end" in value:
            lo, hi = LOWEST, HIGHEST
            try:
                if isinstance(value.get("start"), str):
                    lo = parse_range(value["start"])[0]
                if isinstance(value.get("end"), str):
                    hi = parse_range(value["end"])[1]
            except ValueError:
                return
            yield lo, hi


def encode(code: str, items: Iterable[tuple[str | None, Any]], ix: dict, sk: dict) -> None:
    values: list[dict] = []
    for fhir_type, value in items:
        for lo, hi in _ranges(fhir_type, value):
            entry = {"l": lo, "h": hi}
            if entry not in values:
                values.append(entry)
    if values:
        ix[code] = values
        sk[code] = min(entry["l"] for entry in values)
