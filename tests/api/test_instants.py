"""Instants as the server writes and reads them back (fhir_server.timefmt): one fixed shape, so
string order is time order, and nothing else is taken for one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from fhir_server.search.normalize.date import format_utc
from fhir_server.timefmt import format_instant, http_date, parse_instant


@pytest.mark.parametrize("moment", [
    datetime(2026, 12, 5, 23, 0, 0, 123456, tzinfo=timezone.utc),
    datetime(2026, 12, 6, 1, 0, tzinfo=timezone(timedelta(hours=2))),
    # Years before 1000 keep four digits, as the stored date ranges do (format_utc).
    datetime(999, 3, 4, 5, 6, 7, 8, tzinfo=timezone.utc),
])
def test_an_instant_is_written_in_utc_with_a_fixed_width_and_read_back(moment: datetime) -> None:
    written = format_instant(moment)
    assert written == format_utc(moment.astimezone(timezone.utc))
    assert len(written) == 27 and parse_instant(written) == moment


@pytest.mark.parametrize("value", ["2026-12-05T23:00:00Z", "2026-12-05T23:00:00.000000+01:00",
                                   "2026-12-05 23:00:00.000000Z", "999-03-04T05:06:07.000008Z", ""])
def test_anything_else_is_not_an_instant(value: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(value)


def test_last_modified_is_an_http_date() -> None:
    assert http_date("2026-12-05T23:29:29.994145Z") == "Sat, 05 Dec 2026 23:29:29 GMT"
