"""Resource validation: base R4 structure and the profiles shipped in `profiles/`.

The server calls `validate_resource` on every write (and for `$validate`); `ProfileRegistry.load`
runs once at start-up.
"""

from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation.validator import validate_resource

__all__ = ["ProfileRegistry", "ValidationIssue", "validate_resource"]
