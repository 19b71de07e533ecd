"""Version ETags (`W/"3"`) as sent in If-Match and Bundle.entry.request.ifMatch."""

from __future__ import annotations

import re

from fhir_server.errors import FhirError

ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def parse_etag(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    match = ETAG.match(value)
    if not match:
        raise FhirError(400, "invalid", f"If-Match '{value}' is not a version ETag such as W/\"3\"")
    return int(match.group(1))
