"""Rules of resource types that the repository applies on every write and patch.

IHE MHD / PDSm: a DocumentReference that `replaces` another makes the replaced one `superseded`
atomically with its own creation (same store transaction); the replaced document stays readable.
A patch of a DocumentReference is a PDSm metadata update (see fhir_server.mhd.metadata_update).
"""

from __future__ import annotations

from typing import Any

from fhir_server.errors import FhirError
from fhir_server.mhd.metadata_update import check_metadata_patch
from fhir_server.security.callers import Caller
from fhir_server.storage.documents import Stored
from fhir_server.storage.repository import Repository, Session


async def _replaced_target(repository: Repository, session: Session, target: dict[str, Any]) -> str | None:
    reference = target.get("reference")
    if isinstance(reference, str) and reference.startswith("DocumentReference/"):
        return reference.split("/")[1]
    identifier = target.get("identifier") or {}
    if identifier.get("value"):
        token = f"{identifier.get('system', '')}|{identifier['value']}" if identifier.get("system") else identifier["value"]
        matches = await repository.ids("DocumentReference", [("identifier", token)], session, 2)
        if len(matches) > 1:
            raise FhirError(422, "business-rule", f"The replaced document {token} is not unique")
        return matches[0] if matches else None
    return None


async def supersede_replaced(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
    resource = stored.resource or {}
    if resource.get("status") == "entered-in-error":
        return
    for relation in resource.get("relatesTo") or []:
        if relation.get("code") != "replaces":
            continue
        target_id = await _replaced_target(repository, session, relation.get("target") or {})
        if target_id is None or target_id == stored.id:
            continue
        current = await repository.current("DocumentReference", target_id, session)
        if current is None or current.deleted or (current.resource or {}).get("status") == "superseded":
            continue
        updated = {**(current.resource or {}), "status": "superseded"}
        await repository.update_in(session, caller, "DocumentReference", target_id, updated, if_match=current.version,
                                   for_server=True)


def register_write_rules(repository: Repository) -> None:
    repository.write_rules.setdefault("DocumentReference", []).append(supersede_replaced)
    repository.patch_rules.setdefault("DocumentReference", []).append(check_metadata_patch)
