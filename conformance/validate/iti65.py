"""An ITI-65 Provide Document Bundle (FHIR JSON) as the Document Recipient checks it: R4 structure
and the profiles it claims (PDSm, IHE MHD), attachments against the Binaries' bytes, and, asked of
the server, whether each subject is a patient it knows."""

from __future__ import annotations

import json
from typing import Any

from conformance.model import Requirement, Result, Verdict
from conformance.validate import findings
from conformance.validate.online import Server
from fhir_server.errors import FhirError, Issue
from fhir_server.file_signatures import check_signature
from fhir_server.ingest import pdsm
from fhir_server.mhd import provide_bundle
from fhir_server.operations.bundle_entries import parse_bundle
from fhir_server.storage.binaries import decode_data
from fhir_server.validation.validator import validate_resource
from fhir_server.validation_step import as_issues

TAGS = ("validate", "ITI-65", "PDSm")
STRUCTURE = Requirement(
    "IHE-ITI-65", "2:3.65.4.1.2 Message Semantics",
    "[paraphrase] The Provide Document Bundle is a FHIR Bundle of type transaction carrying one SubmissionSet "
    "List, the DocumentReferences and their Binaries, each conforming to the profiles it claims (IHE MHD; ANS "
    "PDSm for the French shared record).")
ATTACHMENTS = Requirement(
    "IHE-ITI-65", "2:3.65.4.1.2.1 / 2:3.65.4.1.3",
    "The Document Source shall populate accurate .hash and .size for the document content [...] If the Document "
    "Recipient encounters any errors or if any validation fails, the Document Recipient shall return an error")
PATIENT = Requirement(
    "IHE-ITI-65", "2:3.65.4.1.2.2 Patient Identity",
    "All DocumentReference.subject, and List.subject values shall be a Reference to a FHIR Patient Resource. "
    "[...] If the Document Recipient encounters any errors or if any validation fails, the Document Recipient "
    "shall return an error")


def validate(name: str, data: bytes, server: Server | None) -> list[Result]:
    try:
        bundle = json.loads(data)
    except ValueError as error:
        return [Result("VALIDATE-ITI65-structure", f"{name}: FHIR JSON", TAGS, STRUCTURE, Verdict.FAILED,
                       f"not JSON: {error}")]
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        kind = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        return [Result("VALIDATE-ITI65-structure", f"{name}: a Provide Document Bundle", TAGS, STRUCTURE,
                       Verdict.FAILED, f"a {kind}, not a Bundle: the validator reads ITI-65 bundles in JSON")]
    return [structure(name, bundle), attachments(name, bundle), patient(name, bundle, server)]


def structure(name: str, bundle: dict[str, Any]) -> Result:
    issues = as_issues(validate_resource(bundle, None, pdsm.profile_registry()))
    if bundle.get("type") != "transaction":
        issues.append(Issue("error", "value", f"Bundle.type is '{bundle.get('type')}', ITI-65 sends a transaction",
                            ["Bundle.type"]))
    entries = bundle.get("entry") if isinstance(bundle.get("entry"), list) else []
    if not provide_bundle.is_provide_bundle([e.get("resource") for e in entries if isinstance(e, dict)]):
        issues.append(Issue("error", "required", "no SubmissionSet List (List.code "
                            f"{'|'.join(provide_bundle.SUBMISSION_SET)}): not a Provide Document Bundle", ["Bundle.entry"]))
    return findings.result("VALIDATE-ITI65-structure", f"{name}: R4 structure and the profiles it claims", TAGS,
                           STRUCTURE, issues, "the bundle and its resources conform to R4 and to the profiles they claim")


def attachments(name: str, bundle: dict[str, Any]) -> Result:
    issues = provide_bundle.attachment_issues(bundle)
    try:
        _, entries = parse_bundle(bundle, "")
    except FhirError:
        entries = []  # reported by attachment_issues
    for entry in entries:
        if entry.resource_type != "Binary" or not isinstance(entry.resource, dict):
            continue
        # The server refuses bytes that are not what their contentType says (a disguised file).
        try:
            content = decode_data(entry.resource)
            check_signature(entry.resource.get("contentType"), content[:16], f"{entry.where}.resource.data")
        except FhirError as error:
            issues += [Issue(i.severity, i.code, i.diagnostics, i.expression or [f"{entry.where}.resource.data"])
                       for i in error.issues]
    return findings.result("VALIDATE-ITI65-attachments", f"{name}: attachment size, hash and type against the bytes",
                           TAGS, ATTACHMENTS, issues, "every attachment's size, hash and type match its Binary")


def patient(name: str, bundle: dict[str, Any], server: Server | None) -> Result:
    title = f"{name}: the subject is a patient the server knows"
    if server is None:
        return Result("VALIDATE-ITI65-patient", title, TAGS, PATIENT, Verdict.NOT_RUN,
                      "offline: give --base-url (and --token) to ask the server's Bundle/$validate")
    response, exchange = server.post(f"{server.base_url.rstrip('/')}/Bundle/$validate", json.dumps(bundle).encode(),
                                     "application/fhir+json")
    outcome: dict[str, Any] = {}
    if response is not None:
        try:
            outcome = response.json()
        except ValueError:
            outcome = {}
    if response is None or response.status_code != 200 or outcome.get("resourceType") != "OperationOutcome":
        seen = exchange.error or f"HTTP {exchange.status}"
        return Result("VALIDATE-ITI65-patient", title, TAGS, PATIENT, Verdict.ERROR,
                      f"Bundle/$validate gave no OperationOutcome ({seen})", [exchange])
    unknown = [Issue(i.get("severity", "error"), i.get("code", ""), i.get("diagnostics", ""), i.get("expression", []))
               for i in outcome.get("issue", [])
               if i.get("code") == "not-found" and any(str(e).endswith(".subject") for e in i.get("expression", []))]
    verdict = findings.result("VALIDATE-ITI65-patient", title, TAGS, PATIENT, unknown,
                              "the server knows every subject of the bundle")
    verdict.exchanges.append(exchange)
    return verdict
