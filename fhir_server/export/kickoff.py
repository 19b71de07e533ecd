"""What a bulk export kick-off asks (FHIR Bulk Data Access 2.0.0, "Bulk Data Kick-off Request"),
checked before any job exists: who may ask, the parameters this server supports, the types.

Who: system callers (SMART Backend Services) and the platform. No dedicated export scope: a
client exports the types its `system/` scopes let it search (`system/*.rs`, `system/*.read`,
`system/Observation.rs`...), as the IG's v2 scopes say; without `_type`, every such type; a type
`_type` names that its scopes do not cover is a 403, and so is a granular scope (a `?query` the
export could not apply). What it then gets is what its searches would get (docs/ACCESS-RULES.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhir_server.errors import FhirError
from fhir_server.security.callers import Caller
from fhir_server.security.scopes import authorize

# `_outputFormat` values the IG asks servers to accept, all meaning FHIR NDJSON.
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
NDJSON = OUTPUT_FORMATS[0]
SUPPORTED = {"_outputFormat", "_since", "_type", "_format", "_pretty"}
# FHIR instant (R4 datatypes): seconds and a zone are required.
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass
class Kickoff:
    level: str  # system | patient | group
    types: list[str]
    since: str | None
    ignored: list[str] = field(default_factory=list)

    def job(self, request_url: str, patients: list[str] | None) -> dict[str, Any]:
        """The job document's request part."""
        return {"level": self.level, "types": self.types, "since": self.since, "request": request_url,
                "patients": patients or []}


def respond_async(prefer_header: str) -> bool:
    return any(token.strip().lower() == "respond-async" for part in prefer_header.split(";") for token in part.split(","))


def lenient(prefer_header: str) -> bool:
    return "handling=lenient" in prefer_header.replace(" ", "").lower()


def check_caller(caller: Caller) -> None:
    if caller.kind not in ("system", "platform"):
        raise FhirError(403, "forbidden", "Bulk export is for system clients (SMART Backend Services, system/ scopes); "
                                          "a patient's or a professional's record is read with Patient/{id}/$everything")


def _may_export(caller: Caller, resource_type: str) -> bool:
    if not any(s.context == "system" for s in caller.scopes.resource if s.covers(resource_type, "s")):
        return False
    try:
        authorize(caller, "search-type", resource_type, criteria=[])
    except FhirError:
        return False
    return True


def parse(caller: Caller, level: str, params: list[tuple[str, str]], prefer_header: str, available: list[str]) -> Kickoff:
    """The kick-off as a job would run it, or the 4xx its request deserves. `available`: the
    types this level exports (every type, or the Patient compartment's)."""
    check_caller(caller)
    if not respond_async(prefer_header):
        raise FhirError(400, "required", "A bulk export runs asynchronously: send the header Prefer: respond-async")
    types: list[str] = []
    since: str | None = None
    ignored: list[str] = []
    for name, value in params:
        if name == "_outputFormat":
            if value not in OUTPUT_FORMATS:
                raise FhirError(400, "not-supported", f"_outputFormat '{value}' is not supported; this server writes "
                                                      f"{NDJSON} ({', '.join(OUTPUT_FORMATS)})", ["_outputFormat"])
        elif name == "_since":
            if not INSTANT.match(value):
                raise FhirError(400, "invalid", f"_since must be a FHIR instant (e.g. 2024-01-01T00:00:00Z), got "
                                                f"'{value}'", ["_since"])
            since = value
        elif name == "_type":
            types += [t.strip() for t in value.split(",") if t.strip()]
        elif name not in SUPPORTED:
            if not lenient(prefer_header):
                raise FhirError(400, "not-supported", f"This server does not support the export parameter '{name}' "
                                                      "(send Prefer: handling=lenient to have it ignored)", [name])
            ignored.append(name)
    if types:
        unknown = [t for t in types if t not in available]
        if unknown:
            raise FhirError(400, "not-supported", f"{', '.join(unknown)} cannot be exported at this level", ["_type"])
        refused = [t for t in types if not _may_export(caller, t)]
        if refused:
            raise FhirError(403, "forbidden", f"The token's scopes do not allow exporting {', '.join(refused)} "
                                              "(a scope such as system/{type}.rs is needed)")
        chosen = list(dict.fromkeys(types))
    else:
        chosen = [t for t in available if _may_export(caller, t)]
        if not chosen:
            raise FhirError(403, "forbidden", "The token's scopes allow exporting no type (system/*.rs is needed)")
    return Kickoff(level, chosen, since, ignored)
