"""Whether a resource matches a granular scope's criteria (`...rs?category=system|code`).

The resource's own search index (fhir_server.search.extract) is asked, so a scope and a search
mean the same by a parameter. Token parameters are supported; a criterion on any other type
matches nothing, so an unsupported narrowing never widens access.
"""

from __future__ import annotations

from fhir_server.search.extract import extract_index
from fhir_server.search.parameters import SearchParameterRegistry
from fhir_server.security.scopes import Matcher


def resource_matcher(registry: SearchParameterRegistry) -> Matcher:
    def matches(resource: dict, criteria: list[tuple[str, str]]) -> bool:
        index, _ = extract_index(resource, registry)
        for code, value in criteria:
            param = registry.get(resource.get("resourceType", ""), code)
            if param is None or param.type != "token":
                return False
            wanted = value if "|" in value else f"*|{value}"
            values = index.get(code) or []
            if wanted not in (values if isinstance(values, list) else [values]):
                return False
        return True

    return matches
