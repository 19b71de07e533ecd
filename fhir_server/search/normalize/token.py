"""Token search values: `system|code` strings that an equality test on one array field can match.

For each coded value the index holds `<system>|<code>`, `*|<code>` and `<system>|*` (or `|<code>` and
`*|<code>` when there is no system), so each search form (`code`, `system|code`, `system|`, `|code`)
is one lookup of a literal string.
"""

from __future__ import annotations

from typing import Any, Iterable

from fhir_server.search.normalize.string import normalize

CONTACT_POINT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
CODED_DICT_TYPES = frozenset({"CodeableConcept", "Coding", "Identifier", "ContactPoint"})


def infer_type(value: Any) -> str | None:
    """The FHIR type of a value met without a declared type (from the FHIRPath fallback)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "code"
    if not isinstance(value, dict):
        return None
    if "coding" in value:
        return "CodeableConcept"
    if "code" in value or "display" in value:
        return "Coding"
    if "value" in value:
        if value.get("system") in CONTACT_POINT_SYSTEMS and "type" not in value:
            return "ContactPoint"
        return "Identifier"
    if "text" in value:
        return "CodeableConcept"
    return None


class _TokenIndex:
    """Collects the encoded forms of one parameter's values, in first-seen order."""

    def __init__(self) -> None:
        self.codes: dict[str, None] = {}
        self.texts: dict[str, None] = {}
        self.of_type: dict[str, None] = {}
        self.first: str | None = None

    def add(self, system: str | None, code: Any) -> None:
        if code is not None and not isinstance(code, str):
            code = str(code)
        if code:
            if self.first is None:
                self.first = code
            if system:
                self.codes[f"{system}|{code}"] = None
                self.codes[f"*|{code}"] = None
                self.codes[f"{system}|*"] = None
            else:
                self.codes[f"|{code}"] = None
                self.codes[f"*|{code}"] = None
        elif system:
            self.codes[f"{system}|*"] = None

    def add_text(self, text: Any) -> None:
        if isinstance(text, str) and text.strip():
            self.texts[normalize(text)] = None

    def add_coding(self, coding: Any) -> None:
        if isinstance(coding, dict):
            self.add(coding.get("system"), coding.get("code"))
            self.add_text(coding.get("display"))

    def add_value(self, fhir_type: str | None, value: Any) -> None:
        if fhir_type is None or (fhir_type not in CODED_DICT_TYPES and isinstance(value, dict)):
            fhir_type = infer_type(value)
        if fhir_type == "boolean" or isinstance(value, bool):
            if isinstance(value, bool):
                literal = "true" if value else "false"
                self.codes[f"*|{literal}"] = None
                if self.first is None:
                    self.first = literal
        elif isinstance(value, str):
            self.add(None, value)
        elif fhir_type == "CodeableConcept":
            for coding in value.get("coding") or ():
                self.add_coding(coding)
            self.add_text(value.get("text"))
        elif fhir_type == "Coding":
            self.add_coding(value)
        elif fhir_type == "Identifier":
            self.add_identifier(value)
        elif fhir_type == "ContactPoint":
            self.add(None, value.get("value"))

    def add_identifier(self, identifier: dict) -> None:
        system, value = identifier.get("system"), identifier.get("value")
        self.add(system, value)
        id_type = identifier.get("type")
        if isinstance(id_type, dict):
            self.add_text(id_type.get("text"))
            if value is not None:
                for coding in id_type.get("coding") or ():
                    if isinstance(coding, dict):
                        self.of_type[f"{coding.get('system') or ''}|{coding.get('code') or ''}|{value}"] = None

    def store(self, code: str, ix: dict, sk: dict) -> None:
        if self.codes:
            ix[code] = list(self.codes)
        if self.texts:
            ix[code + ":text"] = list(self.texts)
        if self.of_type:
            ix[code + ":of-type"] = list(self.of_type)
        if self.first is not None:
            sk[code] = self.first


def encode(code: str, items: Iterable[tuple[str | None, Any]], ix: dict, sk: dict) -> None:
    index = _TokenIndex()
    for fhir_type, value in items:
        index.add_value(fhir_type, value)
    index.store(code, ix, sk)


def encode_identifiers(code: str, identifiers: Iterable[Any], ix: dict) -> None:
    """Token encoding of Reference.identifier, stored under `<code>` (used for `:identifier`)."""
    index = _TokenIndex()
    for identifier in identifiers:
        if isinstance(identifier, dict):
            index.add_identifier(identifier)
    if index.codes:
        ix[code] = list(index.codes)
