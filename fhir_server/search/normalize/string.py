"""String search values: case- and accent-insensitive matching (FHIR R4 search.html#string)."""

from __future__ import annotations

import unicodedata
from typing import Any, Iterable

# Parts of the complex types that a string parameter matches, each indexed on its own.
HUMAN_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def normalize(s: str) -> str:
    """NFKD, combining marks dropped, casefolded, whitespace collapsed: `Élodie  D'Hôte` -> `elodie d'hote`."""
    if s.isascii():
        return " ".join(s.casefold().split())
    decomposed = unicodedata.normalize("NFKD", s)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def raw_strings(fhir_type: str | None, value: Any) -> list[str]:
    """The strings a value contributes: itself, or the searchable parts of a HumanName or Address."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    if fhir_type == "HumanName" or (fhir_type is None and ("family" in value or "given" in value)):
        parts = HUMAN_NAME_PARTS
    elif fhir_type == "Address" or (fhir_type is None and ("city" in value or "line" in value)):
        parts = ADDRESS_PARTS
    elif "text" in value:
        parts = ("text",)
    else:
        return []
    found: list[str] = []
    for part in parts:
        v = value.get(part)
        if isinstance(v, str):
            found.append(v)
        elif isinstance(v, list):
            found.extend(x for x in v if isinstance(x, str))
    return found


def encode(code: str, items: Iterable[tuple[str | None, Any]], ix: dict, sk: dict) -> None:
    exact: list[str] = []
    for fhir_type, value in items:
        for s in raw_strings(fhir_type, value):
            if s not in exact:
                exact.append(s)
    if not exact:
        return
    normalized: list[str] = []
    for s in exact:
        n = normalize(s)
        if n not in normalized:
            normalized.append(n)
    ix[code] = normalized
    ix[code + ":exact"] = exact
    sk[code] = normalized[0]
