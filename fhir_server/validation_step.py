"""The validation every write goes through: base R4 rules (400), then claimed profiles and those
the resource's code imposes (422)."""

from __future__ import annotations

from typing import Any

from fhir_server.errors import FhirError, Issue
from fhir_server.file_signatures import check_inline_attachments
from fhir_server.validation.base_structure import check_base_structure
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.passed import PASSED
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation.validator import validate_profiles


def as_issues(found: list[ValidationIssue]) -> list[Issue]:
    return [Issue(i.severity, i.code, i.diagnostics, list(i.expression)) for i in found]


def make_validator(registry: ProfileRegistry) -> Any:
    def validate(resource: dict[str, Any]) -> None:
        if resource.get("resourceType") == "Binary":
            # The storage decodes the payload anyway and answers 400 on bad base64, so the
            # structure check sees the Binary without it rather than scanning it twice.
            resource = {k: v for k, v in resource.items() if k != "data"}
        meta = resource.get("meta")
        if isinstance(meta, dict) and meta.get("profile") and PASSED.seen(registry, resource):
            # Checked against these profiles a moment ago (an ingest adapter's PDSm check).
            check_inline_attachments(resource)
            return
        errors = [i for i in check_base_structure(resource, registry) if i.severity == "error"]
        if errors:
            raise FhirError(400, "invalid", "", issues=as_issues(errors))
        check_inline_attachments(resource)
        if (resource.get("meta") or {}).get("profile") or registry.code_profiles.for_resource(resource):
            errors = [i for i in validate_profiles(resource, None, registry) if i.severity == "error"]
            if errors:
                raise FhirError(422, "processing", "", issues=as_issues(errors))

    return validate
