"""Codes of the ValueSets R4 binds `code` elements to with strength required (`profiles/r4/valuesets.json`)."""

from __future__ import annotations

from functools import cache

from fhir_server.definitions.files import R4_DIR, read_json


@cache
def _expansions() -> dict[str, frozenset[str]]:
    return {url: frozenset(codes) for url, codes in read_json(R4_DIR / "valuesets.json")["valueSets"]}


def required_codes(value_set: str) -> frozenset[str] | None:
    """The codes a required binding allows, or None when the ValueSet is not enumerable here
    (it draws on MIME types, languages, UCUM...): such a binding is not checked."""
    return _expansions().get(value_set.split("|", 1)[0])
