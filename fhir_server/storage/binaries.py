"""Binary payloads: raw bytes next to the resource, or in GridFS when too large for a document."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from gridfs import AsyncGridFSBucket

from fhir_server.errors import FhirError


def decode_data(resource: dict[str, Any]) -> bytes:
    data = resource.get("data")
    if data is None:
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise FhirError(400, "invalid", "Binary.data is not valid base64", ["Binary.data"]) from exc


async def stash(content: bytes, bucket: AsyncGridFSBucket, threshold: int, filename: str) -> dict[str, Any]:
    blob: dict[str, Any] = {
        "sha256": hashlib.sha256(content).hexdigest(),
        # Attachment.hash is the base64 SHA-1 of the bytes (FHIR R4 datatypes, IHE MHD)
        "sha1": base64.b64encode(hashlib.sha1(content).digest()).decode("ascii"),
        "size": len(content),
    }
    if len(content) > threshold:
        blob["gridfs"] = await bucket.upload_from_stream(filename, content)
    else:
        blob["inline"] = content
    return blob


async def load(blob: dict[str, Any], bucket: AsyncGridFSBucket) -> bytes:
    if "inline" in blob:
        return bytes(blob["inline"])
    stream = await bucket.open_download_stream(blob["gridfs"])
    return bytes(await stream.read())


def same_content(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return (a or {}).get("sha256") == (b or {}).get("sha256")
