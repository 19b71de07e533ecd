"""Merging the metadata a sender states with what its CDA document says: the sender's values win,
the CDA fills what was left out. Used by the HL7 v2 adapter (OBX-carried CDA) and by IHE MHD
ITI-65 bundles that carry a CDA."""

from __future__ import annotations

from typing import Any


def fill_document_reference(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Fill what the sender did not state from the DocumentReference converted from its CDA."""
    for key, value in theirs.items():
        if key in ("resourceType", "id", "meta", "text", "contained"):
            continue
        if key not in ours:
            ours[key] = value
        elif key == "securityLabel":
            # One label per code system: the CDA's confidentiality never doubles the sender's.
            stated = {c.get("system") for label in ours[key] for c in label.get("coding", [])}
            ours[key] = ours[key] + [label for label in value
                                     if not any(c.get("system") in stated for c in label.get("coding", []))]
        elif key == "context":
            ours[key] = {**value, **ours[key]}
        elif key == "content":
            first = ours[key][0]
            for item_key, item in value[0].items():
                if item_key == "attachment":
                    first["attachment"] = {**item, **first["attachment"]}
                else:
                    first.setdefault(item_key, item)
    # The sender's own contained resources stay; the CDA's come along where still referenced.
    own = ours.get("contained", [])
    own_ids = {item["id"] for item in own}
    contained = own + [item for item in _referenced_contained(ours, theirs.get("contained", [])) if item["id"] not in own_ids]
    if contained:
        ours["contained"] = contained


def _referenced_contained(resource: dict[str, Any], contained: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contained resources still referenced (`#id`) once the message's values have won:
    FHIR forbids contained resources nothing points to."""
    by_id = {item["id"]: item for item in contained}
    kept: dict[str, dict[str, Any]] = {}
    pending = _local_references(resource)
    while pending:
        local_id = pending.pop()
        if local_id in by_id and local_id not in kept:
            kept[local_id] = by_id[local_id]
            pending |= _local_references(by_id[local_id])
    return [item for item in contained if item["id"] in kept]


def _local_references(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item.startswith("#"):
                found.add(item[1:])
            elif key != "contained":
                found |= _local_references(item)
        return found
    if isinstance(value, list):
        return set().union(*(_local_references(item) for item in value)) if value else set()
    return set()
