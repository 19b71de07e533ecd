"""ITI-105 Simplified Publish: a DocumentReference whose attachment carries the document in `data`.

The server turns it into a transaction of the Binaries and the DocumentReference (url, size and
hash filled from the bytes), with the ITI-65 checks, so the record ends up as if ITI-65 was used.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from typing import Any

from fhir_server.definitions.primitives import decode_base64
from fhir_server.errors import FhirError
from fhir_server.mhd import COMPREHENSIVE_DOCUMENT_REFERENCE, SIMPLIFIED_PUBLISH


def applies(resource: dict[str, Any]) -> bool:
    return resource.get("resourceType") == "DocumentReference" and any(
        "data" in (c.get("attachment") or {}) for c in resource.get("content") or []
    )


def as_transaction(resource: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The transaction bundle to process, and the index of the DocumentReference entry in it."""
    document = copy.deepcopy(resource)
    entries: list[dict[str, Any]] = []
    for index, content in enumerate(document.get("content") or []):
        attachment = content.get("attachment") or {}
        if "data" not in attachment:
            continue
        # R4 base64Binary may break its groups of four with whitespace, which the validator accepts.
        raw = decode_base64(attachment.pop("data"))
        if raw is None:
            raise FhirError(400, "invalid", "attachment.data is not valid base64",
                            [f"DocumentReference.content[{index}].attachment.data"])
        full_url = f"urn:uuid:{uuid.uuid4()}"
        binary: dict[str, Any] = {"resourceType": "Binary", "data": base64.b64encode(raw).decode("ascii"),
                                  "contentType": attachment.get("contentType") or "application/octet-stream"}
        entries.append({"fullUrl": full_url, "resource": binary, "request": {"method": "POST", "url": "Binary"}})
        attachment["url"] = full_url
        attachment["size"] = len(raw)
        attachment["hash"] = base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii")
    meta = document.get("meta") or {}
    if SIMPLIFIED_PUBLISH in meta.get("profile", []):
        # What is stored is the comprehensive document the publication describes, with url/size/hash.
        meta["profile"] = [COMPREHENSIVE_DOCUMENT_REFERENCE if p == SIMPLIFIED_PUBLISH else p for p in meta["profile"]]
    entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": document,
                    "request": {"method": "POST", "url": "DocumentReference"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}, len(entries) - 1
