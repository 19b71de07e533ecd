"""`near` (Location-near, type special): the latitude and longitude of Location.position."""

from __future__ import annotations

from typing import Any, Iterable

from fhir_server.search.normalize.number import to_float


def encode(code: str, items: Iterable[tuple[str | None, Any]], ix: dict, sk: dict) -> None:
    for _, value in items:
        if not isinstance(value, dict):
            continue
        latitude, longitude = to_float(value.get("latitude")), to_float(value.get("longitude"))
        if latitude is not None and longitude is not None:
            # One position per Location (0..1): a scalar object, so both coordinates compare as numbers.
            ix[code] = {"lat": latitude, "lon": longitude}
            return
