"""The CapabilityStatement, generated from what is really registered (GET /fhir/metadata)."""

from __future__ import annotations

from typing import Any

from fhir_server import FHIR_VERSION
from fhir_server.search.parameters import SearchParameterRegistry
from fhir_server.timefmt import now_instant
from fhir_server.validation.profile_registry import ProfileRegistry

INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"]
COMMON_SEARCH = [
    ("_id", "token", "http://hl7.org/fhir/SearchParameter/Resource-id"),
    ("_lastUpdated", "date", "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"),
]


def capability_statement(
    base_url: str, resource_types: list[str], search: SearchParameterRegistry, profiles: ProfileRegistry,
    operations: list[dict[str, str]], implementation_guides: list[str], instantiates: list[str],
    security: dict[str, Any],
) -> dict[str, Any]:
    resources = []
    for rtype in sorted(resource_types):
        params = [{"name": n, "type": t, "definition": d} for n, t, d in COMMON_SEARCH]
        params += [
            {"name": p.code, "type": p.type, "definition": p.url}
            for p in sorted(search.for_type(rtype), key=lambda p: p.code)
            if p.code not in ("_id", "_lastUpdated")
        ]
        resource: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": code} for code in INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "logical", "local"],
            "searchInclude": ["*"] + sorted(f"{rtype}:{p.code}" for p in search.for_type(rtype) if p.type == "reference"),
            "searchRevInclude": ["*"],
            "searchParam": params,
        }
        supported = profiles.profiles_for_type(rtype)
        if supported:
            resource["supportedProfile"] = supported
        resources.append(resource)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now_instant()[:10],
        "kind": "instance",
        "instantiates": instantiates,
        "software": {"name": "fhir-server", "version": "0.1.0"},
        "implementation": {"description": "FHIR R4 server for a national personal health record", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "implementationGuide": implementation_guides,
        "rest": [{
            "mode": "server",
            "security": security,
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}, {"code": "search-system"}],
            "searchParam": [{"name": n, "type": t, "definition": d} for n, t, d in COMMON_SEARCH],
            "operation": operations,
        }],
    }
