"""The Binaries of a document belong to it: a Binary that a transaction writes together with the
DocumentReference whose content (or rendering) points at it gets `securityContext` = that
DocumentReference, so whoever may see the document may read its bytes and nobody else
(docs/ACCESS-RULES.md). Every channel that stores documents goes through a transaction (ITI-65,
ITI-105, /ingest/cda, HL7 v2), so this is applied in one place.

It runs inside the transaction once references are resolved, so the document is named by its id
(`urn:uuid` fullUrls and conditional creates already settled), and after the ITI-65 checks, whose
answers (a duplicate document is a 409) come first. A sender's own securityContext is kept when it
names that document and refused otherwise: the bytes would be readable under another resource's
rules. One Binary cannot be the content of two documents for the same reason.
"""

from __future__ import annotations

from typing import Any, Protocol

from fhir_server.errors import FhirError, Issue

_WRITES = ("POST", "PUT")


class PreparedEntry(Protocol):
    entry: Any
    resource: dict[str, Any] | None
    target_id: str | None


def _attachment_urls(document: dict[str, Any]) -> set[str]:
    """The urls of the attachments of `content`: the document itself and what renders it."""
    urls: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("attachment", "valueAttachment") and isinstance(item, dict) and isinstance(item.get("url"), str):
                    urls.add(item["url"])
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document.get("content"))
    return urls


def _written(items: list[PreparedEntry], resource_type: str) -> list[PreparedEntry]:
    return [i for i in items if i.entry.resource_type == resource_type and i.entry.method in _WRITES
            and i.resource is not None and i.target_id is not None]


def bind(items: list[PreparedEntry]) -> None:
    """Set or check the securityContext of each Binary a DocumentReference of `items` points at."""
    documents = [(d, _attachment_urls(d.resource or {})) for d in _written(items, "DocumentReference")]
    issues: list[Issue] = []
    for binary in _written(items, "Binary"):
        owners = [d for d, urls in documents if f"Binary/{binary.target_id}" in urls]
        if not owners:
            continue
        where = f"{binary.entry.where}.resource.securityContext"
        if len(owners) > 1:
            issues.append(Issue("error", "business-rule",
                                f"{binary.entry.where}: the Binary is the content of {len(owners)} DocumentReferences "
                                f"({', '.join(o.entry.where for o in owners)}); its securityContext can name only one, "
                                "so each document needs its own Binary", [where]))
            continue
        owner = f"DocumentReference/{owners[0].target_id}"
        assert binary.resource is not None
        if "securityContext" not in binary.resource:
            binary.resource["securityContext"] = {"reference": owner}
            continue
        stated = (binary.resource.get("securityContext") or {}).get("reference")
        if stated != owner:
            issues.append(Issue("error", "business-rule",
                                f"{binary.entry.where}: the Binary's securityContext '{stated}' does not name the "
                                f"DocumentReference whose content it is ({owners[0].entry.where}); a document's bytes "
                                "are readable under that document's rules only, so name it (its fullUrl) or leave "
                                "securityContext out and the server sets it", [where]))
    if issues:
        raise FhirError(422, "business-rule", "", issues=issues)
