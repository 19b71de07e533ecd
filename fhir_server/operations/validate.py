"""$validate (FHIR R4 resource-operation-validate): check a resource against the base rules and a profile."""

from __future__ import annotations

from typing import Any

from fhir_server.errors import FhirError, Issue, operation_outcome
from fhir_server.mhd import provide_bundle
from fhir_server.security.callers import Caller
from fhir_server.storage.repository import Repository
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation.validator import validate_resource
from fhir_server.validation_step import as_issues


def unpack(body: Any, profile: str | None) -> tuple[dict[str, Any], str | None]:
    """The body is the resource itself or a Parameters with `resource` and optional `profile`."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        resource = None
        parameters = body.get("parameter") or []
        if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
            raise FhirError(400, "structure", "Parameters.parameter must be an array of objects", ["Parameters.parameter"])
        for parameter in parameters:
            if parameter.get("name") == "resource":
                resource = parameter.get("resource")
            elif parameter.get("name") == "profile":
                profile = parameter.get("valueUri") or parameter.get("valueCanonical") or profile
        if profile is not None and not isinstance(profile, str):
            raise FhirError(400, "structure", "The profile parameter must be a uri", ["Parameters.parameter"])
        if not isinstance(resource, dict):
            raise FhirError(400, "required", "Parameters.parameter 'resource' is missing")
        return resource, profile
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "$validate takes a resource or a Parameters resource")
    return body, profile


async def validate(resource_type: str, resource: dict[str, Any], profile: str | None, registry: ProfileRegistry,
                   repo: Repository, caller: Caller) -> dict[str, Any]:
    if resource.get("resourceType") != resource_type:
        raise FhirError(400, "invalid", f"The resource is a {resource.get('resourceType')}, the URL names {resource_type}")
    issues = as_issues(validate_resource(resource, profile, registry))
    entries = resource.get("entry") if resource_type == "Bundle" else None
    if isinstance(entries, list) and provide_bundle.is_provide_bundle([e.get("resource") for e in entries
                                                                       if isinstance(e, dict)]):
        # An ITI-65 bundle is also checked as the Document Recipient would before storing it:
        # its bytes against its attachments, its subjects against the record (IHE MHD 2:3.65.4.1.3).
        issues += await provide_bundle.review(repo, caller, resource)
    if not any(i.severity in ("error", "fatal") for i in issues):
        issues.append(Issue("information", "informational", "Validation found no errors"))
    return operation_outcome(issues)
