"""An ITI-65 bundle that carries a CDA document: what the sender did not state in the
DocumentReference is taken from the document itself, with the same converter as /ingest/cda, and
the DocumentReference then claims PDSm comprehensive like those the other channels store."""

from __future__ import annotations

import base64
import binascii
import copy
import logging
from typing import Any

from cda.content import RENDERING
from cda.convert import convert_cda
from cda.document_id import normalized
from cda.document_merge import fill_document_reference
from cda.errors import CdaError
from fhir_server.errors import FhirError
from fhir_server.mhd import COMPREHENSIVE_DOCUMENT_REFERENCE
from fhir_server.operations.bundle_entries import Entry

log = logging.getLogger(__name__)
CDA_TYPES = ("application/hl7-cda+xml", "text/xml", "application/xml")
# The sender's identity of the document and of the patient are never taken from the CDA.
KEPT_FROM_SENDER = ("subject", "masterIdentifier", "identifier", "status", "relatesTo")


def _cda_bytes(entry: Entry) -> bytes | None:
    resource = entry.resource or {}
    if resource.get("resourceType") != "Binary" or resource.get("contentType", "").split(";")[0] not in CDA_TYPES:
        return None
    try:
        return base64.b64decode(resource.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        return None  # refused later, with its path, by the Binary's own checks


def _without_references_to(value: Any, urls: set[str]) -> Any:
    """Drop references to the converter's own entries (its Patient, Encounter, Binaries): only the
    DocumentReference's metadata is taken, not the resources the converter would have created."""
    if isinstance(value, dict):
        return {k: _without_references_to(v, urls) for k, v in value.items()
                if not (isinstance(v, dict) and v.get("reference") in urls)
                and not (isinstance(v, list) and v and all(isinstance(i, dict) and i.get("reference") in urls for i in v))}
    if isinstance(value, list):
        return [_without_references_to(v, urls) for v in value if not (isinstance(v, dict) and v.get("reference") in urls)]
    return value


def _same_identity(target: Entry, identity: dict[str, Any]) -> None:
    """The masterIdentifier is the CDA's id (cda.document_id), in the one form every channel uses:
    filled when absent, rewritten when the sender wrote the same id another way, refused when it
    names another document."""
    assert target.resource is not None
    stated = target.resource.get("masterIdentifier")
    if stated is None:
        target.resource["masterIdentifier"] = dict(identity)
        return
    same = normalized(stated)
    if (same.get("system"), same.get("value")) != (identity["system"], identity["value"]):
        raise FhirError(
            422, "business-rule",
            f"masterIdentifier {stated.get('system', '')}|{stated.get('value', '')} is not the id of the CDA document "
            f"the DocumentReference points at ({identity['system']}|{identity['value']}, its ClinicalDocument/id)",
            [f"{target.where}.resource.masterIdentifier"],
        )
    target.resource["masterIdentifier"] = same


def complete(entries: list[Entry]) -> None:
    """Fill DocumentReferences from the CDA Binaries they point at (the converter's remarks are logged)."""
    documents = [e for e in entries if e.resource_type == "DocumentReference" and e.method in ("POST", "PUT") and e.resource]
    for binary in entries:
        data = _cda_bytes(binary)
        if data is None or not binary.full_url:
            continue
        targets = [d for d in documents
                   if any((c.get("attachment") or {}).get("url") == binary.full_url for c in d.resource.get("content") or [])]
        if not targets:
            continue
        try:
            conversion = convert_cda(data)
        except CdaError as error:
            log.warning("%s: not read as CDA (%s)", binary.where, error.message)
            continue
        converted = next(e["resource"] for e in conversion.bundle["entry"] if e["fullUrl"] == conversion.document_reference_fullurl)
        own_entries = {e["fullUrl"] for e in conversion.bundle["entry"]}
        converted = {k: v for k, v in _without_references_to(copy.deepcopy(converted), own_entries).items()
                     if k not in KEPT_FROM_SENDER}
        for content in converted.get("content", []):
            # The converter's Binary of a level-1 rendering is not stored here: the bundle is the sender's.
            content["extension"] = [e for e in content.get("extension", []) if e.get("url") != RENDERING]
            if not content["extension"]:
                del content["extension"]
        for target in targets:
            _same_identity(target, conversion.master_identifier)
            fill_document_reference(target.resource, converted)
            meta = target.resource.setdefault("meta", {})
            if COMPREHENSIVE_DOCUMENT_REFERENCE not in meta.get("profile", []):
                # Completed from its CDA, it is a PDSm document like those of the other channels.
                meta["profile"] = [*meta.get("profile", []), COMPREHENSIVE_DOCUMENT_REFERENCE]
        for warning in conversion.warnings:
            log.info("%s: CDA: %s", binary.where, warning)
