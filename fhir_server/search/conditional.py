"""The criteria of a conditional create (`If-None-Exist`, a transaction's `ifNoneExist`).

R4 http.html gives them as a query (`identifier=x|1`); HAPI FHIR clients send them as a search URL
relative to the base (`Patient?identifier=x|1`, and `?identifier=...`), so both are read here. The
type, when written, must be the type being created: criteria on another type would let a create be
skipped by a match the client never meant.
"""

from __future__ import annotations

import re

from fhir_server.errors import FhirError

_TYPE_PREFIX = re.compile(r"/?([A-Z][A-Za-z]*)?\?")


def if_none_exist_query(value: str, resource_type: str, where: str = "If-None-Exist") -> str:
    """The query part of the criteria, `Type?` (or `?`) taken off."""
    prefix = _TYPE_PREFIX.match(value)
    if prefix is None:
        return value
    named = prefix.group(1)
    if named is not None and named != resource_type:
        raise FhirError(400, "invalid", f"{where} names the type {named}, but the resource created is a {resource_type}",
                        [where] if where.startswith("Bundle") else None)
    return value[prefix.end():]
