"""ITI-65 Provide Document Bundle: what is checked before anything of the bundle is stored.

Run inside the bundle's store transaction, after urn:uuid and conditional references are
resolved and before any entry is written, so a refusal leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fhir_server.errors import FhirError, Issue
from fhir_server.mhd import SUBMISSION_SET
from fhir_server.operations.bundle_entries import Entry, parse_bundle
from fhir_server.operations.reference_rewrite import ReferenceRewriter
from fhir_server.security.callers import INS_SYSTEMS, Caller
from fhir_server.storage import claims
from fhir_server.storage.binaries import decode_data, describe
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
            claims.claim(repo.database.pending, session, "DocumentReference", [("identifier", token)])
    return issues


def _check_attachments(item: PreparedEntry, binaries: dict[str, PreparedEntry]) -> list[Issue]:
    issues: list[Issue] = []
    for index, content in enumerate((item.resource or {}).get("content") or []):
        # $validate reviews bundles the structure check refused too: what is not an object is its to report.
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict):
            continue
        where = f"{item.entry.where}.resource.content[{index}].attachment"
        url = attachment.get("url") if isinstance(attachment.get("url"), str) else None
        binary = binaries.get(url or "")
        if binary is None or binary.blob is None:
            if url and url.startswith("Binary/"):
                continue  # a Binary already in the record: checked when it was stored
            issues.append(Issue("error", "required", f"attachment.url '{url}' names no Binary of the bundle", [f"{where}.url"]))
            continue
        if isinstance(attachment.get("size"), int) and attachment["size"] != binary.blob["size"]:
            issues.append(Issue("error", "value", f"attachment.size {attachment['size']} differs from the Binary's {binary.blob['size']} bytes", [f"{where}.size"]))
        if "hash" in attachment and attachment["hash"] != binary.blob["sha1"]:
            issues.append(Issue("error", "value", f"attachment.hash is not the base64 SHA-1 of the Binary ({binary.blob['sha1']})", [f"{where}.hash"]))
        if attachment.get("contentType") and binary.resource and binary.resource.get("contentType") != attachment["contentType"]:
            issues.append(Issue("error", "value", "attachment.contentType differs from the Binary's contentType", [f"{where}.contentType"]))
    return issues


async def _seen(repo: Repository, session: Session, patient_id: str, caller: Caller | None) -> bool:
    """Whether `caller` (None: the server itself) may see the Patient; a refused record is not seen."""
    if caller is None:
        return True
    try:
        return await repo.find_current(caller, "Patient", patient_id, session) is not None
    except FhirError:
        return False


async def resolve_subject(repo: Repository, session: Session, subject: dict[str, Any], where: str,
                          seen_by: Caller | None = None) -> dict[str, Any]:
    """The subject as a reference to a Patient the record knows (by id or by INS), else a 422.
    With `seen_by`, a Patient that caller may not see is answered as one the record does not
    know, in the same words: the answer never tells a hidden patient exists."""
    reference = subject.get("reference")
    if isinstance(reference, str) and reference.startswith("Patient/"):
        patient_id = reference.split("/", 1)[1]
        found = await repo.current("Patient", patient_id, session)
        if found is not None and not found.deleted and await _seen(repo, session, patient_id, seen_by):
            return subject
        raise FhirError(422, "not-found", f"The subject {reference} is not a patient of the record", [where])
    identifier = subject.get("identifier") if isinstance(subject.get("identifier"), dict) else {}
    if identifier.get("system") in INS_SYSTEMS and identifier.get("value"):
        ids = await repo.ids("Patient", [("identifier", _token(identifier))], session, 2)
        if len(ids) == 1 and await _seen(repo, session, ids[0], seen_by):
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


@dataclass
class _Offered:
    """An entry of a bundle that is validated, not stored, as the checks above read it."""

    entry: Entry
    resource: dict[str, Any] | None
    blob: dict[str, Any] | None
    target_id: str | None = None


def _offered(bundle: dict[str, Any]) -> list[_Offered]:
    """The bundle's entries, each Binary with what its bytes are (size, SHA-1)."""
    _, entries = parse_bundle(bundle, "")
    offered = []
    for entry in entries:
        blob = None
        if entry.resource_type == "Binary" and entry.resource is not None:
            try:
                blob = describe(decode_data(entry.resource))
            except FhirError:
                pass  # not base64: the structure's check says so, and no attachment can match it
        offered.append(_Offered(entry, entry.resource, blob))
    return offered


def _documents(offered: list[_Offered]) -> list[_Offered]:
    return [o for o in offered if o.entry.method in ("POST", "PUT") and o.entry.resource_type in ("DocumentReference", "List")]


def _attachment_issues(offered: list[_Offered]) -> list[Issue]:
    named = {o.entry.full_url: o for o in offered if o.entry.resource_type == "Binary" and o.entry.full_url}
    return [issue for item in _documents(offered) if item.entry.resource_type == "DocumentReference"
            for issue in _check_attachments(item, named)]


def attachment_issues(bundle: dict[str, Any]) -> list[Issue]:
    """Attachment size, hash and type against the bytes of the bundle's Binaries, as the Document
    Recipient checks them, without a record (`fhir-conformance validate`, offline)."""
    try:
        return _attachment_issues(_offered(bundle))
    except FhirError as error:
        return error.issues


async def review(repo: Repository, caller: Caller, bundle: dict[str, Any]) -> list[Issue]:
    """What the Document Recipient would refuse in an ITI-65 bundle besides its profiles, for
    `$validate`: the attachment checks, and subjects that are no patient of the record `caller`
    may see. It reads the record and writes nothing."""
    try:
        offered = _offered(bundle)
    except FhirError as error:
        return error.issues
    issues = _attachment_issues(offered)
    created_patients = {o.entry.full_url for o in offered if o.entry.resource_type == "Patient" and o.entry.full_url}
    for item in _documents(offered):
        subject = (item.resource or {}).get("subject")
        if not isinstance(subject, dict) or subject.get("reference") in created_patients:
            continue
        where = f"{item.entry.where}.resource.subject"
        try:
            # A conditional reference resolves as in the transaction, for the caller: what they may
            # not see matches nothing.
            resolved = await ReferenceRewriter(repo, caller, None, {}).rewrite(
                {"resourceType": item.entry.resource_type, "subject": subject}, where)
            await resolve_subject(repo, None, resolved["subject"], where, seen_by=caller)
        except FhirError as error:
            issues += error.issues
    return issues
