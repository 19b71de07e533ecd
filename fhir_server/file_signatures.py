"""The declared content type of a file against the signature of its bytes (`profiles/file-signatures.json`).

A Binary, or an Attachment carrying its bytes inline, that says `application/pdf` must start with
`%PDF-`: a Windows program (MZ) labelled as a PDF is refused before anything is stored. Checked
where bytes enter the record: `Repository.stash_binary` (every Binary, raw or JSON, alone or in a
Bundle, before its bytes are written) and the write validation (inline `Attachment.data`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from fhir_server.errors import FhirError

SIGNATURES_FILE = Path(__file__).resolve().parents[1] / "profiles" / "file-signatures.json"
# Enough base64 characters for the longest signature (8 bytes need 12 characters).
_HEAD_CHARACTERS = 24


@cache
def signatures() -> dict[str, tuple[bytes, ...]]:
    table = orjson.loads(SIGNATURES_FILE.read_bytes())["signatures"]
    return {media: tuple(bytes.fromhex(h) for h in prefixes) for media, prefixes in table.items()}


def media_type(content_type: Any) -> str:
    """`Application/PDF; name=x` -> `application/pdf`."""
    return content_type.split(";", 1)[0].strip().lower() if isinstance(content_type, str) else ""


def check_signature(content_type: Any, head: bytes, where: str) -> None:
    """422 when `head` (the first bytes of a non-empty file) lacks the signature of its declared type."""
    expected = signatures().get(media_type(content_type))
    if not expected or not head or any(head.startswith(prefix) for prefix in expected):
        return
    raise FhirError(
        422, "invalid",
        f"The content is declared {media_type(content_type)} but its bytes do not start with that format's signature",
        [where],
    )


def check_inline_attachments(resource: dict[str, Any]) -> None:
    """Every Attachment of `resource` that carries its bytes in `data` (Binary excluded: its bytes
    are checked when stored)."""
    if resource.get("resourceType") == "Binary":
        return
    for where, attachment in _attachments(resource, resource.get("resourceType", "")):
        data = attachment["data"]
        try:
            head = base64.b64decode(data[:_HEAD_CHARACTERS])
        except (binascii.Error, ValueError):
            continue  # not base64: the base structure check answers 400 for it
        check_signature(attachment.get("contentType"), head, f"{where}.data")


def _attachments(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    # Attachment is the only R4 datatype with both contentType and data.
    if isinstance(value, dict):
        if isinstance(value.get("data"), str) and "contentType" in value:
            yield path, value
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                yield from _attachments(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _attachments(item, f"{path}[{index}]")
