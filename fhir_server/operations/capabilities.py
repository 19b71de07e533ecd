"""The CapabilityStatement, generated from what is really registered (GET /fhir/metadata).

Types, search parameters, `_include` and `_revinclude` values come from the same definitions the
server searches with; the part per type is built once (it does not depend on the request). The
server's own operations on a type are declared by their OperationDefinitions, kept as data in
`profiles/OperationDefinition/` (each names its types in `resource`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from fhir_server import FHIR_VERSION
from fhir_server.config import PROJECT_ROOT
from fhir_server.search.parameters import COMMON_BASE, SearchParameterRegistry
from fhir_server.timefmt import now_instant
from fhir_server.validation.profile_registry import ProfileRegistry

OPERATION_DEFINITIONS = PROJECT_ROOT / "profiles" / "OperationDefinition"
INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"]


def _search_param(definition: dict[str, Any]) -> dict[str, Any]:
    return {"name": definition["code"], "definition": definition["url"], "type": definition["type"]}


@cache
def type_operations() -> dict[str, list[dict[str, str]]]:
    """Per resource type, `rest.resource.operation`: the name and canonical URL of each operation
    `profiles/OperationDefinition/` defines on it."""
    found: dict[str, list[dict[str, str]]] = {}
    for path in sorted(OPERATION_DEFINITIONS.glob("*.json")):
        definition = orjson.loads(path.read_bytes())
        for rtype in definition["resource"]:
            found.setdefault(rtype, []).append({"name": definition["code"], "definition": definition["url"]})
    return found


def _searchable(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # R4 defines `_text`, `_content` and `_query` without an expression: not offered, answered 400.
    return [_search_param(d) for d in sorted(definitions, key=lambda d: d["code"]) if d.get("expression")]


class CapabilityBuilder:
    def __init__(self, resource_types: list[str], search: SearchParameterRegistry, profiles: ProfileRegistry,
                 operations: list[dict[str, str]], implementation_guides: list[str], instantiates: list[str]) -> None:
        self.resource_types = sorted(resource_types)
        self.search = search
        self.profiles = profiles
        self.operations = operations
        self.implementation_guides = implementation_guides
        self.instantiates = instantiates
        self._built: list[dict[str, Any]] | None = None

    def _resources(self) -> list[dict[str, Any]]:
        if self._built is not None:
            return self._built
        resources = []
        revincludes = self.search.revincludes(self.resource_types)
        for rtype in self.resource_types:
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
                "searchInclude": ["*", *self.search.includes(rtype)],
                "searchRevInclude": ["*", *revincludes[rtype]],
                "searchParam": _searchable(self.search.definitions_for(rtype)),
            }
            if rtype in type_operations():
                resource["operation"] = type_operations()[rtype]
            supported = self.profiles.profiles_for_type(rtype)
            if supported:
                resource["supportedProfile"] = supported
            resources.append(resource)
        self._built = resources
        return resources

    def statement(self, base_url: str, security: dict[str, Any]) -> dict[str, Any]:
        """`security`: how clients authenticate (SMART on FHIR), `rest.security`."""
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": now_instant()[:10],
            "kind": "instance",
            "instantiates": self.instantiates,
            "software": {"name": "fhir-server", "version": "0.1.0"},
            "implementation": {"description": "FHIR R4 server for a national personal health record", "url": base_url},
            "fhirVersion": FHIR_VERSION,
            "format": ["application/fhir+json", "json", "application/fhir+xml", "xml"],
            # JSON Patch, and FHIRPath Patch as a Parameters resource in either format.
            "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
            "implementationGuide": self.implementation_guides,
            "rest": [{
                "mode": "server",
                "security": security,
                "resource": self._resources(),
                "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"},
                                {"code": "search-system"}],
                "searchParam": _searchable(self.search.definitions_for(COMMON_BASE)),
                "operation": self.operations,
            }],
        }
