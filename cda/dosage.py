"""substanceAdministration dosage (PIVL/EIVL/IVL/SXPR timing, dose, rate, route) -> Dosage."""

from datetime import date, datetime, timedelta

from lxml import etree

from cda.datatypes import (
    UCUM, V3, XSI_TYPE, codeable_concept, every, first, number, original_text, period, quantity,
)
from cda.mappings import table

# Widths that can be added exactly to a start date (months and years have no fixed length).
_WIDTH_DELTAS = {"s": "seconds", "min": "minutes", "h": "hours", "d": "days", "wk": "weeks"}


def _shift(start: str, value: int | float, unit: str) -> str | None:
    """start + width, keeping the start's precision; None when that cannot be exact."""
    delta_unit = _WIDTH_DELTAS.get(unit)
    if delta_unit is None:
        return None
    try:
        delta = timedelta(**{delta_unit: value})
        if "T" in start:
            return (datetime.fromisoformat(start.replace("Z", "+00:00")) + delta).isoformat()
        if len(start) == 10 and delta % timedelta(days=1) == timedelta(0):
            return (date.fromisoformat(start) + delta).isoformat()
    except (OverflowError, ValueError):
        pass  # a width beyond the calendar: kept as a duration by the caller
    return None


def _xsi_type(element: etree._Element) -> str:
    return (element.get(XSI_TYPE) or "").rpartition(":")[2]


def _apply_time(element: etree._Element, repeat: dict, warnings: list[str]) -> None:
    kind = _xsi_type(element)
    if kind == "SXPR_TS":
        for component in every(element, "comp"):
            _apply_time(component, repeat, warnings)
    elif kind == "PIVL_TS":
        frequency = first(element, "period")
        unit = table("timing_units").get(frequency.get("unit", "")) if frequency is not None else None
        value = number(frequency.get("value")) if frequency is not None else None
        if unit is None or value is None:
            warnings.append("PIVL_TS period without a usable value and time unit ignored")
            return
        repeat.update(frequency=1, period=value, periodUnit=unit)
    elif kind == "EIVL_TS":
        event = first(element, "event")
        if event is not None and event.get("code"):
            repeat.setdefault("when", []).append(event.get("code"))
    elif kind == "IVL_TS" or first(element, "low") is not None:
        bounds = period(element, warnings, "substanceAdministration/effectiveTime") or {}
        width = first(element, "width")
        if "start" in bounds and "end" not in bounds and width is not None:
            width_value, width_unit = number(width.get("value")), width.get("unit", "")
            end = _shift(bounds["start"], width_value, width_unit) if width_value is not None else None
            if end is None:
                repeat["boundsDuration"] = {
                    "value": width_value, "unit": width_unit, "system": UCUM, "code": width_unit,
                }
                return
            bounds["end"] = end
        if bounds:
            repeat["boundsPeriod"] = bounds


def _amount(element: etree._Element | None) -> tuple[str, dict] | None:
    """IVL_PQ -> ("Quantity", q) when one value, ("Range", r) for a low..high interval."""
    if element is None:
        return None
    low, high = quantity(first(element, "low")), quantity(first(element, "high"))
    if low is not None and low == high:
        return "Quantity", low
    if low is not None or high is not None:
        return "Range", {key: value for key, value in (("low", low), ("high", high)) if value}
    single = quantity(element)
    return ("Quantity", single) if single else None


def _ratio(element: etree._Element | None) -> dict | None:
    if element is None:
        return None
    numerator, denominator = quantity(first(element, "numerator")), quantity(first(element, "denominator"))
    ratio = {key: value for key, value in (("numerator", numerator), ("denominator", denominator)) if value}
    return ratio or None


# The children of a substanceAdministration that make up a dosage, fetched in one XPath call.
_DOSAGE_PARTS = etree.XPath(
    "|".join(
        f"h:{name}" for name in (
            "text", "effectiveTime", "approachSiteCode", "routeCode", "doseQuantity",
            "rateQuantity", "maxDoseQuantity",
        )
    ),
    namespaces={"h": V3},
)


def dosage(
    administration: etree._Element, narrative: dict[str, str], warnings: list[str]
) -> dict:
    """The Dosage stated directly on one substanceAdministration (possibly empty)."""
    parts: dict[str, etree._Element] = {}
    repeat: dict = {}
    for part in _DOSAGE_PARTS(administration):
        name = etree.QName(part).localname
        if name == "effectiveTime":
            _apply_time(part, repeat, warnings)
        else:
            parts.setdefault(name, part)
    result: dict = {}
    if sig := original_text(parts.get("text"), narrative):
        result["text"] = sig
    if repeat:
        result["timing"] = {"repeat": repeat}
    if site := codeable_concept(parts.get("approachSiteCode"), narrative):
        result["site"] = site
    if route := codeable_concept(parts.get("routeCode"), narrative):
        result["route"] = route
    dose_and_rate: dict = {}
    if dose := _amount(parts.get("doseQuantity")):
        dose_and_rate[f"dose{dose[0]}"] = dose[1]
    if rate := _amount(parts.get("rateQuantity")):
        dose_and_rate[f"rate{rate[0]}"] = rate[1]
    if dose_and_rate:
        result["doseAndRate"] = [dose_and_rate]
    if maximum := _ratio(parts.get("maxDoseQuantity")):
        result["maxDosePerPeriod"] = maximum
    return result
