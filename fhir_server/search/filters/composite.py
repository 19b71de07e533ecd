"""composite: `part$part` values, one part per component, matched in one stored combination
(see fhir_server.search.normalize.composite for how combinations are stored)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fhir_server.errors import FhirError
from fhir_server.search.filters import date, number
from fhir_server.search.filters.prefixes import split_prefix
from fhir_server.search.filters.reference import reference_keys
from fhir_server.search.filters.token import token_key
from fhir_server.search.normalize.composite import LETTERS
from fhir_server.search.normalize.string import normalize

if TYPE_CHECKING:
    from fhir_server.search.parameters import Component, SearchParam


def _quantity(letter: str, text: str) -> list[dict[str, Any]]:
    parts = text.split("|")
    if len(parts) not in (1, 3):
        raise FhirError(400, "invalid", f"'{text}' is not [prefix]number|system|code")
    prefix, value = split_prefix(parts[0])
    out: list[dict[str, Any]] = []
    for numeric in number.value_conditions(prefix, value):
        match = {letter + "v": numeric}
        system, code = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
        if system:
            match[letter + "s"] = system
        if code and system:
            out.append({**match, letter + "c": code})
        elif code:
            # `number||code` matches the code or the unit, as for a quantity parameter.
            out += [{**match, letter + "c": code}, {**match, letter + "u": code}]
        else:
            out.append(match)
    return out


def _part(letter: str, component: Component, text: str, base_url: str) -> list[dict[str, Any]]:
    """The alternatives (ORed) one part of a search value allows for its component."""
    match component.type:
        case "token":
            return [{letter: token_key(text)}]
        case "string":
            return [{letter: {"$regex": f"^{re.escape(normalize(text))}"}}]
        case "uri":
            return [{letter: text}]
        case "reference":
            return [{letter: key} for key in reference_keys(text, list(component.targets), None, base_url)]
        case "number":
            prefix, value = split_prefix(text)
            return [{letter: condition} for condition in number.value_conditions(prefix, value)]
        case "quantity":
            return _quantity(letter, text)
        case "date":
            prefix, lo, hi = date.parse_value(text)
            return [{f"{letter}{key}": value for key, value in alternative.items()}
                    for alternative in date.range_conditions(prefix, lo, hi)]
    raise FhirError(400, "not-supported", f"Composite components of type {component.type} are not supported")


def condition(field: str, param: SearchParam, values: list[str], base_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for value in values:
        parts = value.split("$")
        if len(parts) != len(param.components):
            raise FhirError(400, "invalid", f"'{value}': {param.code} takes {len(param.components)} parts "
                                            f"separated by '$'", [param.code])
        alternatives: list[dict[str, Any]] = [{}]
        for letter, component, part in zip(LETTERS, param.components, parts):
            options = _part(letter, component, part, base_url)
            alternatives = [{**before, **option} for before in alternatives for option in options]
        out += [{field: {"$elemMatch": alternative}} for alternative in alternatives]
    return out
