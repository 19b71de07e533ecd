"""The shape of a stored resource version in MongoDB.

Current versions live in one collection per resource type, `_id` = the FHIR id; every version,
deletions included, also lives in the `history` collection. Both carry `pat`, the patient whose
record holds the resource, a top-level scalar both stores index. Search index values (`ix`) and sort
keys (`sk`) are written into the same document, so a write stays one atomic document operation.

A resource whose JSON passes `COMPRESS_ABOVE` bytes is kept zlib-compressed (`resz`) instead of
as a document (`res`): stores refuse documents over 16 MB, and the specification's own examples
include Bundles of 20 and 35 MB (FHIR JSON compresses about tenfold).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_server.errors import FhirError
from fhir_server.timefmt import instant

COMPRESS_ABOVE = 1024 * 1024
# What a compressed body may take, leaving the rest of the 16 MB document to the index values.
MAX_COMPRESSED = 12 * 1024 * 1024


@dataclass
class Stored:
    resource_type: str
    id: str
    version: int
    last_updated: str
    deleted: bool
    resource: dict[str, Any] | None
    blob: dict[str, Any] | None = None
    lookup_keys: list[str] = field(default_factory=list)
    # The patient whose record holds it (fhir_server.storage.patient_key), None for shared resources.
    patient: str | None = None
    # The keys access rules compare (fhir_server.storage.hooks, record keys), stored as `acc`.
    keys: dict[str, Any] = field(default_factory=dict)

    @property
    def version_id(self) -> str:
        return str(self.version)


def current_document(stored: Stored, ix: dict[str, Any], sk: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": stored.id,
        # A plain copy of the id: the embedded store sorts and ranges on `_id` by full scan,
        # but on an ordinary indexed field like this one it does not.
        "sid": stored.id,
        "vid": stored.version,
        "ts": instant(stored.last_updated),
        "del": stored.deleted,
        "pat": stored.patient,
        "acc": stored.keys,
        **_body(stored.resource),
        "ix": ix,
        "sk": sk,
    }
    if stored.blob is not None:
        doc["blob"] = stored.blob
    if stored.lookup_keys:
        doc["lk"] = stored.lookup_keys
    return doc


def history_document(stored: Stored, method: str) -> dict[str, Any]:
    rid = f"{stored.resource_type}/{stored.id}"
    doc: dict[str, Any] = {
        # Keyed by time first: history pages newest-first on `_id` alone, one range per page.
        "_id": f"{instant(stored.last_updated)}|{rid}/{stored.version}",
        "rt": stored.resource_type,
        "rid": rid,
        "vid": stored.version,
        "ts": instant(stored.last_updated),
        "del": stored.deleted,
        "pat": stored.patient,
        "acc": stored.keys,
        "method": method,
        **_body(stored.resource),
    }
    if stored.blob is not None:
        doc["blob"] = stored.blob
    return doc


def _body(resource: dict[str, Any] | None) -> dict[str, Any]:
    if resource is None:
        return {"res": None}
    raw = orjson.dumps(resource)
    if len(raw) <= COMPRESS_ABOVE:
        return {"res": resource}
    packed = zlib.compress(raw, 6)
    if len(packed) > MAX_COMPRESSED:
        raise FhirError(413, "too-costly", f"The resource is too large to store ({len(raw) // 2**20} MB of JSON)")
    return {"res": None, "resz": packed}


def _resource(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("resz") is not None:
        return orjson.loads(zlib.decompress(doc["resz"]))
    return doc.get("res")


def from_current(resource_type: str, doc: dict[str, Any]) -> Stored:
    return Stored(resource_type, doc["_id"], doc["vid"], doc["ts"][1:], doc["del"], _resource(doc), doc.get("blob"),
                  doc.get("lk") or [], doc.get("pat"), doc.get("acc") or {})


def from_history(doc: dict[str, Any]) -> Stored:
    resource_type, resource_id = doc["rid"].split("/", 1)
    return Stored(resource_type, resource_id, doc["vid"], doc["ts"][1:], doc["del"], _resource(doc), doc.get("blob"),
                  patient=doc.get("pat"), keys=doc.get("acc") or {})
