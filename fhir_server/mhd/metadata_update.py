"""PDSm metadata update: a patch of a DocumentReference may change only its status, its
security labels (visibility) and the isArchived extension; anything else is refused."""

from __future__ import annotations

from typing import Any

from fhir_server.errors import FhirError

IS_ARCHIVED = "http://esante.gouv.fr/cisis/fhir/StructureDefinition/PDSm_isArchived"
CHANGEABLE = ("status", "securityLabel", "meta")


def _fixed_part(resource: dict[str, Any]) -> dict[str, Any]:
    fixed = {k: v for k, v in resource.items() if k not in CHANGEABLE}
    extensions = [e for e in resource.get("extension") or [] if e.get("url") != IS_ARCHIVED]
    fixed.pop("extension", None)
    if extensions:
        fixed["extension"] = extensions
    return fixed


def check_metadata_patch(before: dict[str, Any], after: dict[str, Any]) -> None:
    if _fixed_part(before) == _fixed_part(after):
        return
    changed = sorted(k for k in set(before) | set(after) if k not in CHANGEABLE and before.get(k) != after.get(k))
    raise FhirError(
        422, "business-rule",
        "A DocumentReference metadata update may change only status, securityLabel and the isArchived extension; "
        f"this patch changes {', '.join(changed)}",
        [f"DocumentReference.{name}" for name in changed],
    )
