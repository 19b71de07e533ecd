"""Binary payloads, stored once by content.

A Binary version keeps only the digest of its bytes; the bytes live in the `blobs` collection
keyed by their SHA-256 (in GridFS, named by it, when too large for a document). So the current
version and every history entry share one copy, and a resent document costs no second copy.

Bytes that fit a document are written in the transaction of the version that names them, with
its other deferred writes (storage/pending.py; issue 18: a separate write was a separate synced
commit for each document): both land or neither. They go as an upsert that leaves stored bytes as
they are, so the same content sent twice, even twice in one group commit, is one copy. Larger
bytes go to GridFS before the transaction: an aborted transaction leaves an unreferenced blob
behind, never a resource without its bytes.

On the embedded store every GridFS operation, even a read, holds the writer gate: the store runs
all sessions on one SQLite connection, so bytes written while another request's transaction is
open land in that transaction (and vanish with it if it aborts), and the first GridFS operation of
a store process sets the connection's synchronous pragma, which is refused inside a transaction
(the request failed with a 500).
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.asynchronous.client_session import AsyncClientSession

from fhir_server.definitions.primitives import decode_base64
from fhir_server.errors import FhirError
from fhir_server.storage.pending import PendingWrites

if TYPE_CHECKING:
    from fhir_server.storage.database import Database

BLOBS = "blobs"
# A stashed blob's bytes, carried in its description until the transaction of the version naming
# it sends them (`BlobStore.send`); never stored in a version.
UNSENT = "unsent"


def decode_data(resource: dict[str, Any]) -> bytes:
    data = resource.get("data")
    if data is None:
        return b""
    # R4 base64Binary may break its groups of four with whitespace (the specification's Binary-example does).
    content = decode_base64(data) if isinstance(data, str) else None
    if content is None:
        raise FhirError(400, "invalid", "Binary.data is not valid base64", ["Binary.data"])
    return content


def describe(content: bytes) -> dict[str, Any]:
    """What a Binary version keeps of its bytes; the ITI-65 checks read `size` and `sha1` from it."""
    return {
        "sha256": hashlib.sha256(content).hexdigest(),
        # Attachment.hash is the base64 SHA-1 of the bytes (FHIR R4 datatypes, IHE MHD)
        "sha1": base64.b64encode(hashlib.sha1(content).digest()).decode("ascii"),
        "size": len(content),
    }


def same_content(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return (a or {}).get("sha256") == (b or {}).get("sha256")


class BlobStore:
    def __init__(self, database: Database, threshold: int) -> None:
        # The database's gate is read at each call: it is set when the store has said what it is.
        self.database = database
        db: AsyncDatabase[dict[str, Any]] = database.db
        self.blobs = db[BLOBS]
        self.bucket = AsyncGridFSBucket(db, bucket_name="binaries")
        self.files = db["binaries.files"]
        self.threshold = threshold

    async def stash(self, content: bytes) -> dict[str, Any]:
        """The description a version keeps of `content`; bytes too large for a document are
        written now, the others carried to the version's transaction (`send`)."""
        meta = describe(content)
        if len(content) <= self.threshold:
            meta[UNSENT] = content
            return meta
        meta["gridfs"] = True
        async with self.database.gate.write(exclude_readers=False):
            # GridFS's own async cursor leaks StopAsyncIteration from to_list; ask its files collection.
            if await self.files.find_one({"filename": meta["sha256"]}, {"_id": 1}) is None:
                await self.bucket.upload_from_stream(meta["sha256"], content)
        return meta

    def send(self, pending: PendingWrites, session: AsyncClientSession, blob: dict[str, Any]) -> dict[str, Any]:
        """Queue the bytes `stash` carried in the transaction of `session`; the description without them."""
        kept = {k: v for k, v in blob.items() if k != UNSENT}
        pending.upsert(session, BLOBS, blob["sha256"], {"$setOnInsert": {"data": blob[UNSENT]}})
        return kept

    async def load(self, meta: dict[str, Any]) -> bytes:
        if meta.get("gridfs"):
            async with self.database.gate.write(exclude_readers=False):
                stream = await self.bucket.open_download_stream_by_name(meta["sha256"])
                return bytes(await stream.read())
        doc = await self.blobs.find_one({"_id": meta["sha256"]})
        return bytes(doc["data"]) if doc else b""
