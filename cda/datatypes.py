"""CDA R2 (HL7 v3) data types to FHIR R4 data types."""

import math
import re
from datetime import datetime
from functools import cache

from lxml import etree

from cda.mappings import table

V3 = "urn:hl7-org:v3"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
UCUM = "http://unitsofmeasure.org"

_UUID = re.compile(r"^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_TS = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(\.\d+)?)?([+-]\d{4}|Z)?$"
)
_SPACES = re.compile(r"\s+")


@cache
def _compiled(steps: str) -> str | etree.XPath:
    """A one-step path as its Clark tag (iterchildren is the cheapest lookup), a longer one as a
    compiled XPath (which walks the whole path in libxml2)."""
    if "/" not in steps:
        return f"{{{V3}}}{steps}"
    return etree.XPath("/".join(f"h:{step}" for step in steps.split("/")), namespaces={"h": V3})


def first(element: etree._Element | None, steps: str) -> etree._Element | None:
    if element is None:
        return None
    lookup = _compiled(steps)
    if isinstance(lookup, str):
        return next(element.iterchildren(lookup), None)
    found = lookup(element)
    return found[0] if found else None


def every(element: etree._Element | None, steps: str) -> list[etree._Element]:
    if element is None:
        return []
    lookup = _compiled(steps)
    return list(element.iterchildren(lookup)) if isinstance(lookup, str) else lookup(element)


def text(element: etree._Element | None) -> str | None:
    """The text content with whitespace collapsed, or None when empty."""
    if element is None:
        return None
    raw = (element.text or "") if len(element) == 0 else "".join(element.itertext())
    return _SPACES.sub(" ", raw).strip() or None


def is_oid(text: str) -> bool:
    return bool(_OID.match(text))


def is_uuid(text: str) -> bool:
    return bool(_UUID.match(text))


def oid_uri(root: str) -> str:
    return f"urn:uuid:{root.lower()}" if _UUID.match(root) else f"urn:oid:{root}"


def system_uri(code_system: str) -> str:
    """FHIR system URI of a CDA codeSystem; unknown OIDs pass through as urn:oid."""
    return table("code_systems").get(code_system) or oid_uri(code_system)


def identifier(ii: etree._Element | None) -> dict | None:
    """II -> Identifier: root+extension become system+value, a lone root is itself a URI."""
    if ii is None or ii.get("nullFlavor"):
        return None
    root = ii.get("root")
    return ii_identifier(root, ii.get("extension")) if root else None


def ii_identifier(root: str, extension: str | None) -> dict:
    """The ANS rule (IG Mapping CDA - FHIR, StructureMap CdaToFHIRTypes, group II): root and
    extension become system and value; a root alone is itself the value, as an RFC 3986 URN."""
    if extension:
        return {"system": oid_uri(root), "value": extension}
    return {"system": "urn:ietf:rfc:3986", "value": oid_uri(root)}


def coding(cd: etree._Element | None) -> dict | None:
    if cd is None:
        return None
    code, code_system = cd.get("code"), cd.get("codeSystem")
    if not code or not code_system or cd.get("nullFlavor"):
        return None
    result = {"system": system_uri(code_system), "code": code}
    if display := cd.get("displayName"):
        result["display"] = display.strip()
    return result


def codeable_concept(
    cd: etree._Element | None, narrative: dict[str, str] | None = None
) -> dict | None:
    """CD -> CodeableConcept with translations as extra codings and originalText as text."""
    if cd is None:
        return None
    main = coding(cd)
    if len(cd) == 0:  # the common case: no translation, no originalText
        return {"coding": [main]} if main else None
    codings = [c for c in (main, *map(coding, every(cd, "translation"))) if c]
    result: dict = {"coding": codings} if codings else {}
    if original := original_text(first(cd, "originalText"), narrative):
        result["text"] = original
    return result or None


def original_text(element: etree._Element | None, narrative: dict[str, str] | None) -> str | None:
    """ED text: a `<reference value="#id"/>` into the section narrative, else the literal text."""
    if element is None:
        return None
    reference = first(element, "reference")
    if reference is not None and narrative is not None:
        target = (reference.get("value") or "").lstrip("#")
        if target in narrative:
            return narrative[target]
    return text(element) if reference is None else None


def timestamp(value: str | None, warnings: list[str], where: str) -> str | None:
    """TS -> FHIR dateTime. A time without zone is cut to its date: FHIR requires the zone."""
    if not value:
        return None
    match = _TS.match(value.strip())
    if not match:
        warnings.append(f"{where}: unreadable timestamp {value!r} ignored")
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0),
        )
    except ValueError:
        warnings.append(f"{where}: impossible timestamp {value!r} ignored")
        return None
    date = "-".join(part for part in (year, month, day) if part)
    if hour is None:
        return date
    if zone is None or day is None:
        warnings.append(f"{where}: timestamp {value!r} has no time zone, kept as a date")
        return date
    clock = f"{hour}:{minute or '00'}:{second or '00'}{fraction or ''}"
    offset = "Z" if zone == "Z" else f"{zone[:3]}:{zone[3:]}"
    return f"{date}T{clock}{offset}"


def number(value: str | None) -> int | float | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        try:
            result = float(value)
        except ValueError:
            return None
    # JSON and FHIR decimals have no NaN or infinity.
    return result if math.isfinite(result) else None


def quantity(pq: etree._Element | None) -> dict | None:
    """PQ -> Quantity; units are UCUM (annotations such as {tbl} included)."""
    if pq is None:
        return None
    value = number(pq.get("value"))
    if value is None:
        return None
    result: dict = {"value": value}
    unit = pq.get("unit")
    if unit and unit != "1":
        result.update(unit=unit, system=UCUM, code=unit)
    return result


def period(ivl: etree._Element | None, warnings: list[str], where: str) -> dict | None:
    if ivl is None:
        return None
    result = {}
    for bound, key in (("low", "start"), ("high", "end")):
        node = first(ivl, bound)
        if node is not None and (converted := timestamp(node.get("value"), warnings, where)):
            result[key] = converted
    if not result and (converted := timestamp(ivl.get("value"), warnings, where)):
        result["start"] = converted
    return result or None


def human_name(pn: etree._Element | None) -> dict | None:
    """PN without qualifiers -> HumanName (first family, every given, prefix, suffix)."""
    if pn is None:
        return None
    result: dict = {}
    if family := text(first(pn, "family")):
        result["family"] = family
    for part, key in (("given", "given"), ("prefix", "prefix"), ("suffix", "suffix")):
        values = [value for value in map(text, every(pn, part)) if value]
        if values:
            result[key] = values
    if not result and (whole := text(pn)):
        result["text"] = whole
    return result or None
