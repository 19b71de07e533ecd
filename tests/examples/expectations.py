"""What a search should find among the stored examples, worked out without the server's search code.

Each parameter's expression (from the specification's SearchParameter definitions) is evaluated
with fhirpathpy, and search values are matched with the rules of R4 search.html written out
plainly here: token `system|code`, string starts-with ignoring case and accents, date `eq` as
containment of ranges, number and quantity `eq` within the precision of the value, uri and
reference equality, composite parts matched on one value of the composite's expression.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import fhirpathpy
from fhirpathpy.models import models

R4_SEARCH_PARAMETERS = Path(__file__).resolve().parents[2] / "profiles" / "r4" / "search-parameters.json"
KINDS = ("token", "string", "date", "reference", "quantity", "number", "uri", "composite")
RESOLVE_IS = re.compile(r"\.where\(resolve\(\) is (\w+)\)")
AS_OPERATOR = re.compile(r"\s+as\s+([A-Za-z]+)")
RESERVED = set(",|$\\")
CONTACT_POINT_SYSTEMS = {"phone", "fax", "email", "pager", "url", "sms", "other"}
MINUS_INFINITY = datetime.min.replace(tzinfo=timezone.utc)
PLUS_INFINITY = datetime.max.replace(tzinfo=timezone.utc)


def definitions() -> dict[str, dict[str, Any]]:
    bundle = json.loads(R4_SEARCH_PARAMETERS.read_text(encoding="utf-8"))
    return {entry["resource"]["url"]: entry["resource"] for entry in bundle["entry"]}


def parameters_of(resource_type: str, by_url: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    bases = {resource_type, "Resource", "DomainResource"}
    return [d for d in by_url.values() if bases & set(d.get("base", ()))]


def branches_for(expression: str, resource_type: str) -> str:
    """The `|` branches of a shared expression that start at this type (or at no type)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(expression):
        depth += char == "("
        depth -= char == ")"
        if char == "|" and depth == 0:
            parts.append(expression[start:index].strip())
            start = index + 1
    parts.append(expression[start:].strip())
    kept = []
    for part in parts:
        head = part.lstrip("(").split(".")[0].split(" ")[0]
        if head in (resource_type, "Resource", "DomainResource") or not head[:1].isupper():
            kept.append(part)
    return " | ".join(kept)


def _for_fhirpathpy(expression: str) -> str:
    # fhirpathpy has no resolve(): `x.where(resolve() is Patient)` keeps references that say Patient.
    return RESOLVE_IS.sub(lambda m: f".where(reference.startsWith('{m.group(1)}/'))", expression)


def _collections_of(expression: str) -> str:
    # fhirpathpy's `as` takes one value only, where search expressions apply it to collections.
    return AS_OPERATOR.sub(r".ofType(\1)", expression.replace(".as(", ".ofType("))


def evaluate(resource: dict[str, Any], expression: str, environment: dict[str, Any] | None = None) -> list[Any] | None:
    """The expression's values, or None when fhirpathpy cannot evaluate it."""
    plain = _for_fhirpathpy(expression)
    for attempt in (plain, _collections_of(plain)):
        try:
            return [v for v in fhirpathpy.evaluate(resource, attempt, environment or {}, models["r4"]) if v is not None]
        except Exception:  # noqa: BLE001 - fhirpathpy raises many kinds; such a parameter is not checked
            continue
    return None


# --- values and matches per kind --------------------------------------------------------------------

def tokens(value: Any) -> list[tuple[str | None, str]]:
    if isinstance(value, bool):
        return [(None, "true" if value else "false")]
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [pair for coding in value["coding"] for pair in tokens(coding)]
    if "code" in value and isinstance(value["code"], str):
        return [(value.get("system"), value["code"])]
    if isinstance(value.get("value"), str):
        if value.get("system") in CONTACT_POINT_SYSTEMS:
            return [(None, value["value"])]  # ContactPoint: R4 matches the value alone
        return [(value.get("system"), value["value"])]  # Identifier
    return []


def normalize(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    for part in ("family", "given", "prefix", "suffix", "text", "line", "city", "district", "state", "postalCode",
                 "country"):
        found = value.get(part)
        out += [found] if isinstance(found, str) else [x for x in found or () if isinstance(x, str)]
    return out


_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")


def date_range(text: str) -> tuple[datetime, datetime] | None:
    """The instants a date, dateTime or instant covers at its precision (no zone: UTC)."""
    match = _DATE.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if month is None:
        low = datetime(int(year), 1, 1, tzinfo=timezone.utc)
        high = datetime(int(year) + 1, 1, 1, tzinfo=timezone.utc) if int(year) < 9999 else PLUS_INFINITY
    elif day is None:
        low = datetime(int(year), int(month), 1, tzinfo=timezone.utc)
        high = (low + timedelta(days=32)).replace(day=1)
    elif hour is None:
        low = datetime(int(year), int(month), int(day), tzinfo=timezone.utc)
        high = low + timedelta(days=1)
    else:
        offset = timedelta(0)
        if zone and zone != "Z":
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * (1 if zone[0] == "+" else -1)
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=timezone.utc)
        low = local - offset
        if second is None:
            high = low + timedelta(minutes=1)
        elif fraction:
            step = timedelta(microseconds=10 ** max(6 - (len(fraction) - 1), 0))
            low += timedelta(microseconds=int((fraction[1:] + "000000")[:6]))
            high = low + step
        else:
            high = low + timedelta(seconds=1)
    return low, high


def date_ranges(value: Any) -> list[tuple[datetime, datetime]]:
    if isinstance(value, str):
        found = date_range(value)
        return [found] if found else []
    if isinstance(value, dict) and ("start" in value or "end" in value):
        start = date_range(value["start"]) if isinstance(value.get("start"), str) else None
        end = date_range(value["end"]) if isinstance(value.get("end"), str) else None
        return [(start[0] if start else MINUS_INFINITY, end[1] if end else PLUS_INFINITY)]
    if isinstance(value, dict) and "event" in value:
        return [r for event in value["event"] for r in date_ranges(event)]
    return []


def numbers(value: Any) -> list[Decimal]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float, Decimal)):
        return [Decimal(str(value))]
    return []


def eq_range(text: str) -> tuple[Decimal, Decimal]:
    number = Decimal(text)
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)  # type: ignore[operator]
    return number - half, number + half


@dataclass(frozen=True)
class Probe:
    """One search: a parameter, the value sent, and the test a stored value must pass to match."""

    code: str
    value: str
    matches: Callable[[Any], bool]


def _plain(text: str) -> bool:
    return bool(text) and not (RESERVED & set(text)) and text == text.strip()


def probe(kind: str, code: str, value: Any) -> Probe | None:
    """A search value made from one of an example's values, and what else it matches."""
    if kind == "token":
        for system, token in tokens(value):
            if not _plain(token) or (system is not None and not _plain(system)):
                continue
            if system:
                return Probe(code, f"{system}|{token}", lambda v, s=system, t=token: (s, t) in tokens(v))
            return Probe(code, token, lambda v, t=token: any(c == t for _, c in tokens(v)))
    elif kind == "string":
        for text in strings(value):
            word = re.match(r"[^\W_]{2,}", text)
            if word and text.startswith(word.group(0)):
                wanted = normalize(word.group(0))
                return Probe(code, word.group(0),
                             lambda v, w=wanted: any(" ".join(normalize(s).split()).startswith(w) for s in strings(v)))
    elif kind == "date":
        if isinstance(value, str) and date_range(value) is not None and "+" not in value:
            low, high = date_range(value)  # type: ignore[misc]
            return Probe(code, f"eq{value}",
                         lambda v, lo=low, hi=high: any(lo <= a and b <= hi for a, b in date_ranges(v)))
    elif kind == "reference":
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            key = value["reference"].split("/_history/")[0]
            if re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}", key):
                return Probe(code, key, lambda v, k=key: isinstance(v, dict) and isinstance(v.get("reference"), str)
                             and v["reference"].split("/_history/")[0] == k)
        elif isinstance(value, str) and _plain(value) and "|" not in value and ("/" in value or value.startswith("urn:")):
            # A canonical, searched by its url (a value without '/' would be read as an id; `#x` is contained).
            return Probe(code, value, lambda v, k=value: isinstance(v, str) and v.split("|")[0] == k)
    elif kind == "uri":
        if isinstance(value, str) and _plain(value):
            return Probe(code, value, lambda v, k=value: isinstance(v, str) and k in (v, v.split("|")[0]))
    elif kind == "number":
        for number in numbers(value):
            low, high = eq_range(str(number))
            return Probe(code, str(number), lambda v, lo=low, hi=high: any(lo <= n < hi for n in numbers(v)))
    elif kind == "quantity":
        if isinstance(value, dict) and numbers(value.get("value")):
            number = numbers(value["value"])[0]
            low, high = eq_range(str(number))
            system, unit = value.get("system"), value.get("code")
            if system and unit and _plain(system) and _plain(unit):
                return Probe(code, f"{number}|{system}|{unit}", lambda v, lo=low, hi=high, s=system, u=unit:
                             isinstance(v, dict) and v.get("system") == s and v.get("code") == u
                             and any(lo <= n < hi for n in numbers(v.get("value"))))
            return Probe(code, str(number), lambda v, lo=low, hi=high: isinstance(v, dict)
                         and any(lo <= n < hi for n in numbers(v.get("value"))))
    return None


# --- whole resources ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Search:
    """A search for one parameter, and which resources it must find."""

    code: str
    value: str
    finds: Callable[[dict[str, Any]], bool]


def simple_searches(kind: str, definition: dict[str, Any], resource_type: str,
                    resource: dict[str, Any]) -> list[Search]:
    """Searches built from the values this resource has for a non-composite parameter."""
    expression = branches_for(definition.get("expression", ""), resource_type)
    values = evaluate(resource, expression) if expression else None
    out: list[Search] = []
    for value in values or ():
        found = probe(kind, definition["code"], value)
        if found is None:
            continue

        def finds(other: dict[str, Any], e: str = expression, p: Probe = found) -> bool:
            return any(p.matches(v) for v in evaluate(other, e) or ())

        out.append(Search(found.code, found.value, finds))
    return out


def _component_values(resource: dict[str, Any], definition: dict[str, Any], resource_type: str,
                      by_url: dict[str, dict[str, Any]]) -> list[list[tuple[str, list[Any]]]]:
    """For each value of a composite's expression: (kind, values) of each component."""
    out = []
    for branch in branches_for(definition["expression"], resource_type).split(" | "):
        roots = evaluate(resource, branch)
        for index in range(len(roots or ())):
            path = branch if branch == resource_type else f"{branch}[{index}]"
            parts = []
            for component in definition["component"]:
                kind = by_url[component["definition"]]["type"]
                expression = component["expression"]
                full = expression if expression.startswith("%resource") else f"{path}.{expression}"
                parts.append((kind, evaluate(resource, full, {"resource": resource}) or []))
            out.append(parts)
    return out


def composite_searches(definition: dict[str, Any], resource_type: str, resource: dict[str, Any],
                       by_url: dict[str, dict[str, Any]]) -> list[Search]:
    """Searches made of one value of each component, taken from one value of the composite."""
    out: list[Search] = []
    for parts in _component_values(resource, definition, resource_type, by_url):
        probes = []
        for kind, values in parts:
            found = next((p for p in (probe(kind, "", v) for v in values) if p is not None), None)
            if found is None:
                break
            probes.append(found)
        else:
            def finds(other: dict[str, Any], ps: list[Probe] = probes) -> bool:
                return any(all(any(p.matches(v) for v in values) for p, (_, values) in zip(ps, candidate))
                           for candidate in _component_values(other, definition, resource_type, by_url))

            out.append(Search(definition["code"], "$".join(p.value for p in probes), finds))
    return out
