"""The shape of a stored resource version in MongoDB.

Current versions live in one collection per resource type, `_id` = the FHIR id; every version,
deletions included, also lives in the `history` collection. Both carry `pat`, the patient whose
record holds the resource, a top-level scalar both stores index. Search index values (`ix`) and sort
keys (`sk`) are written into the same document, so a write stays one atomic document operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_server.timefmt import instant


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
        "res": stored.resource,
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
        "method": method,
        "res": stored.resource,
    }
    if stored.blob is not None:
        doc["blob"] = stored.blob
    return doc


def from_current(resource_type: str, doc: dict[str, Any]) -> Stored:
    return Stored(resource_type, doc["_id"], doc["vid"], doc["ts"][1:], doc["del"], doc.get("res"), doc.get("blob"),
                  doc.get("lk") or [], doc.get("pat"))


def from_history(doc: dict[str, Any]) -> Stored:
    resource_type, resource_id = doc["rid"].split("/", 1)
    return Stored(resource_type, resource_id, doc["vid"], doc["ts"][1:], doc["del"], doc.get("res"), doc.get("blob"),
                  patient=doc.get("pat"))
