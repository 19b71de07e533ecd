"""The base R4 check every write goes through.

R4B shares R4's structure for the resource types this server stores; the fhir.resources R4B
pydantic models check element names, datatypes, primitive formats and required elements. Their
errors are turned into issues whose expression is a FHIRPath-style path into the instance. What the
models do not check comes from the R4 rules themselves: the characters strings may hold and the
required bindings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_server.validation.characters import check_characters
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.required_bindings import check_required_bindings

if TYPE_CHECKING:
    from fhir_server.validation.profile_registry import ProfileRegistry

# pydantic error type -> FHIR IssueType
_ISSUE_CODES = {
    "missing": "required",
    "model_field_validation.missing": "required",
    "extra_forbidden": "structure",
}


def check_base_structure(resource: Any, registry: ProfileRegistry) -> list[ValidationIssue]:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return [ValidationIssue("error", "structure", [], "A resource must be a JSON object with a resourceType")]
    resource_type = resource["resourceType"]
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return [ValidationIssue("error", "not-supported", [], f"Unknown resource type {resource_type!r}")]
    issues = check_characters(resource, resource_type)
    try:
        model.model_validate(resource)
    except ValidationError as error:
        return issues + [_issue(resource_type, detail) for detail in error.errors()]
    return issues + check_required_bindings(resource, registry)


def _issue(resource_type: str, detail: Any) -> ValidationIssue:
    code = _ISSUE_CODES.get(detail["type"], "value")
    return ValidationIssue("error", code, [expression_from_loc(resource_type, detail["loc"])], detail["msg"])


def expression_from_loc(resource_type: str, loc: tuple) -> str:
    """('content', 0, 'attachment', 'contentType') -> DocumentReference.content[0].attachment.contentType"""
    expression = resource_type
    for part in loc:
        expression += f"[{part}]" if isinstance(part, int) else f".{part}"
    return expression
