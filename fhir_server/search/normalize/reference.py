"""Reference search values (FHIR R4 search.html#reference).

Relative references are stored as `Type/id` (version dropped); absolute URLs and `urn:` references
are stored whole; canonicals as the url, with and without `|version`. Reference.identifier is stored
with the token encoding under `<code>:identifier`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from fhir_server.search.normalize.token import encode_identifiers

RELATIVE_REFERENCE = re.compile(
    r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


def reference_key(reference: str) -> str:
    """The stored form of Reference.reference: `Patient/1/_history/2` -> `Patient/1`."""
    match = RELATIVE_REFERENCE.fullmatch(reference)
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    return reference


def reference_type(reference: str) -> str | None:
    """The resource type a literal reference points to, when its text says so."""
    match = RELATIVE_REFERENCE.fullmatch(reference)
    if match:
        return match.group(1)
    if "://" in reference:
        segments = reference.split("/_history/", 1)[0].rstrip("/").split("/")
        if len(segments) >= 2 and RELATIVE_REFERENCE.fullmatch(f"{segments[-2]}/{segments[-1]}"):
            return segments[-2]
    return None


def encode(code: str, items: Iterable[tuple[str | None, Any]], ix: dict, sk: dict, single: bool) -> None:
    keys: list[str] = []
    identifiers: list[Any] = []
    for _, value in items:
        if isinstance(value, dict):
            literal = value.get("reference")
            if isinstance(literal, str) and literal:
                key = reference_key(literal)
                if key not in keys:
                    keys.append(key)
            if isinstance(value.get("identifier"), dict):
                identifiers.append(value["identifier"])
        elif isinstance(value, str) and value:
            # canonical: searchable by the bare url as well as by `url|version`.
            bare = value.split("|", 1)[0]
            for key in (bare, value):
                if key not in keys:
                    keys.append(key)
    if keys:
        # The embedded store indexes scalars only: a parameter that can hold one value is stored as one.
        ix[code] = keys[0] if single else keys
        sk[code] = keys[0]
    if identifiers:
        encode_identifiers(code + ":identifier", identifiers, ix)
