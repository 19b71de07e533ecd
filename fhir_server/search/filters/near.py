"""`near=latitude|longitude|distance|units` (Location-near, R4 location.html#positional).

The match is the box around the point that holds the circle of that distance (degrees of
latitude are about 111.2 km, degrees of longitude that times the cosine of the latitude), so
a Location in the box's corners, a little farther than the distance, matches too. Without a
distance, R4 leaves the radius to the server: this one takes 1 km.
"""

from __future__ import annotations

import math
from typing import Any

from fhir_server.errors import FhirError

KM_PER_DEGREE = 111.195
# UCUM units a distance may be given in, and their length in km; km when none is given (R4).
UNITS_KM = {"km": 1.0, "m": 0.001, "[mi_i]": 1.609344, "mi": 1.609344}
DEFAULT_KM = 1.0


def condition(field: str, values: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for value in values:
        parts = value.split("|")
        try:
            latitude, longitude = float(parts[0]), float(parts[1])
            distance = float(parts[2]) if len(parts) > 2 and parts[2] else None
        except (ValueError, IndexError) as exc:
            raise FhirError(400, "invalid", f"'{value}' is not latitude|longitude[|distance[|units]]") from exc
        unit = parts[3] if len(parts) > 3 and parts[3] else "km"
        if unit not in UNITS_KM or len(parts) > 4 or not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise FhirError(400, "invalid", f"'{value}' is not latitude|longitude[|distance[|units in km, m or [mi_i]]]")
        km = DEFAULT_KM if distance is None else distance * UNITS_KM[unit]
        dlat = km / KM_PER_DEGREE
        dlon = km / (KM_PER_DEGREE * max(math.cos(math.radians(latitude)), 1e-6))
        out.append({f"{field}.lat": {"$gte": latitude - dlat, "$lte": latitude + dlat},
                    f"{field}.lon": {"$gte": longitude - dlon, "$lte": longitude + dlon}})
    return out
