"""What the patient holds in their Patient resource is not a hospital's to overwrite.

ADT messages write the Patient by a conditional update that replaces it with what PID states.
The elements the patient (or the platform acting for them) sets are never in PID: the record's
status (issue 12: an opposed or closed record refuses deposits) and the médecin traitant the
patient designated (who is authorised by that designation). A replacement without them would
reopen a closed record or withdraw an authorisation behind the patient's back, so they are
carried over from the stored Patient (`mappings/hl7v2/defaults.json`, `patientHeld`).
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import parse_qsl

from fhir_server.ingest.hl7v2.mapfiles import load_json


class IdentifierLookup(Protocol):
    async def find_by_identifier(self, resource_type: str, token: str) -> list[dict[str, Any]]: ...


def _identifier_token(url: str) -> str | None:
    """`system|value` of a conditional update `Patient?identifier=system|value`."""
    _, _, query = url.partition("?")
    return next((value for name, value in parse_qsl(query) if name == "identifier"), None)


def carry_over(replacement: dict[str, Any], stored: dict[str, Any]) -> None:
    """Put into `replacement` the elements and extensions of `stored` that the patient holds."""
    held = load_json("defaults.json")["patientHeld"]
    for name in held["elements"]:
        if name in stored:
            replacement[name] = stored[name]
    kept = [e for e in stored.get("extension", []) if e.get("url") in held["extensions"]]
    if kept:
        own = [e for e in replacement.get("extension", []) if e.get("url") not in held["extensions"]]
        replacement["extension"] = [*own, *kept]


async def keep_patient_held(bundle: dict[str, Any], lookup: IdentifierLookup) -> None:
    """Each Patient the bundle replaces by identifier keeps what the patient holds."""
    for entry in bundle["entry"]:
        request = entry.get("request", {})
        if entry["resource"].get("resourceType") != "Patient" or request.get("method") != "PUT":
            continue
        token = _identifier_token(request.get("url", ""))
        if token is None:
            continue
        found = await lookup.find_by_identifier("Patient", token)
        if len(found) == 1:
            carry_over(entry["resource"], found[0])
