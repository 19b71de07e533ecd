"""Deterministic identifiers, so that converting the same document twice yields the same bundle.

Replays then converge in the repository: PUTs with identical content are no-ops and conditional
creates find what the first conversion made.
"""

import hashlib
import uuid

# Fixed namespace of this converter for name-based (version 5) UUIDs.
_NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-4c51-9a43-1d2f8e7b3c90")


def document_key(master_identifier: dict) -> str:
    """A short stable key of a document, usable inside FHIR ids ([A-Za-z0-9-.]{1,64})."""
    text = f"{master_identifier['system']}|{master_identifier['value']}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def resource_id(key: str, *suffix: str) -> str:
    return "-".join(("cda", key, *suffix))


def full_url(*parts: str) -> str:
    """A urn:uuid fullUrl derived from `parts`."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, '|'.join(parts))}"
