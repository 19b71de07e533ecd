"""ITI-65 Provide Document Bundle: what is checked before anything of the bundle is stored.

Run inside the bundle's store transaction, after urn:uuid and conditional references are
resolved and before any entry is written, so a refusal leaves nothing behind.
"""

from __future__ import annotations

from typing import Any, Protocol

from fhir_server.errors import FhirError, Issue
from fhir_server.mhd import SUBMISSION_SET
from fhir_server.security.callers import INS_SYSTEMS
from fhir_server.storage import claims
from fhir_server.storage.repository import Repository, Session


class PreparedEntry(Protocol):
    entry: Any
    resource: dict[str, Any] | None
    blob: dict[str, Any] | None
    target_id: str | None


def is_provide_bundle(resources: list[dict[str, Any] | None]) -> bool:
    """An ITI-65 bundle: it carries a SubmissionSet List. Asked of bundles not yet validated too
    (fhir_server.api.system_routes): a value of the wrong JSON type is no SubmissionSet."""
    for resource in resources:
        if not isinstance(resource, dict) or resource.get("resourceType") != "List":
            continue
        code = resource.get("code")
        codings = code.get("coding") if isinstance(code, dict) else None
        if isinstance(codings, list) and any(
                isinstance(c, dict) and (c.get("system"), c.get("code")) == SUBMISSION_SET for c in codings):
            return True
    return False


def _token(identifier: dict[str, Any]) -> str:
    system = identifier.get("system")
    return f"{system}|{identifier['value']}" if system else identifier["value"]


async def _check_unique_master_identifiers(repo: Repository, session: Session, docs: list[PreparedEntry]) -> list[Issue]:
    issues: list[Issue] = []
    seen: set[str] = set()
    for item in docs:
        master = (item.resource or {}).get("masterIdentifier") or {}
        where = f"{item.entry.where}.resource.masterIdentifier"
        if not master.get("value"):
            continue
        token = _token(master)
        if token in seen:
            issues.append(Issue("error", "duplicate", f"masterIdentifier {token} appears twice in the bundle", [where]))
        seen.add(token)
        if await repo.ids("DocumentReference", [("identifier", token)], session, 1):
            issues.append(Issue("error", "duplicate", f"A document with masterIdentifier {token} is already in the record", [where]))
        else:
            await claims.claim(repo.database.db, session, "DocumentReference", [("identifier", token)])
    return issues


def _check_attachments(item: PreparedEntry, binaries: dict[str, PreparedEntry]) -> list[Issue]:
    issues: list[Issue] = []
    for index, content in enumerate((item.resource or {}).get("content") or []):
        attachment = content.get("attachment") or {}
        where = f"{item.entry.where}.resource.content[{index}].attachment"
        url = attachment.get("url")
        binary = binaries.get(url or "")
        if binary is None or binary.blob is None:
            if url and url.startswith("Binary/"):
                continue  # a Binary already in the record: checked when it was stored
            issues.append(Issue("error", "required", f"attachment.url '{url}' names no Binary of the bundle", [f"{where}.url"]))
            continue
        if "size" in attachment and int(attachment["size"]) != binary.blob["size"]:
            issues.append(Issue("error", "value", f"attachment.size {attachment['size']} differs from the Binary's {binary.blob['size']} bytes", [f"{where}.size"]))
        if "hash" in attachment and attachment["hash"] != binary.blob["sha1"]:
            issues.append(Issue("error", "value", f"attachment.hash is not the base64 SHA-1 of the Binary ({binary.blob['sha1']})", [f"{where}.hash"]))
        if attachment.get("contentType") and binary.resource and binary.resource.get("contentType") != attachment["contentType"]:
            issues.append(Issue("error", "value", "attachment.contentType differs from the Binary's contentType", [f"{where}.contentType"]))
    return issues


async def resolve_subject(repo: Repository, session: Session, subject: dict[str, Any], where: str) -> dict[str, Any]:
    """The subject as a reference to a Patient the record knows (by id or by INS), else a 422."""
    reference = subject.get("reference")
    if isinstance(reference, str) and reference.startswith("Patient/"):
        found = await repo.current("Patient", reference.split("/", 1)[1], session)
        if found is not None and not found.deleted:
            return subject
        raise FhirError(422, "not-found", f"The subject {reference} is not a patient of the record", [where])
    identifier = subject.get("identifier") or {}
    if identifier.get("system") in INS_SYSTEMS and identifier.get("value"):
        ids = await repo.ids("Patient", [("identifier", _token(identifier))], session, 2)
        if len(ids) == 1:
            return {**subject, "reference": f"Patient/{ids[0]}"}
        raise FhirError(422, "not-found", f"No single patient of the record has INS {identifier['value']}", [where])
    raise FhirError(422, "required", "The subject must reference a known Patient by id or by INS identifier", [where])


async def check(repo: Repository, session: Session, items: list[PreparedEntry]) -> None:
    binaries = {i.entry.full_url: i for i in items if i.entry.resource_type == "Binary" and i.entry.full_url}
    binaries.update({f"Binary/{i.target_id}": i for i in items if i.entry.resource_type == "Binary" and i.target_id})
    docs = [i for i in items if i.entry.resource_type == "DocumentReference" and i.entry.method in ("POST", "PUT")]
    if not docs:
        raise FhirError(422, "required", "An ITI-65 bundle carries at least one DocumentReference")
    issues = await _check_unique_master_identifiers(repo, session, docs)
    for item in docs:
        issues += _check_attachments(item, binaries)
    if any(i.code == "duplicate" for i in issues):
        raise FhirError(409, "duplicate", "", issues=issues)
    if issues:
        raise FhirError(422, "processing", "", issues=issues)
    for item in items:
        resource = item.resource or {}
        if item.entry.resource_type in ("DocumentReference", "List") and resource.get("subject"):
            resource["subject"] = await resolve_subject(repo, session, resource["subject"], f"{item.entry.where}.resource.subject")
