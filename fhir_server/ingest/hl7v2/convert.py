"""One HL7 v2 message -> one FHIR R4 transaction Bundle, through the map of its message structure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.hl7v2.engine import Engine
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.functions import FUNCTIONS
from fhir_server.ingest.hl7v2.mapfiles import load_json


@dataclass
class Hl7Conversion:
    """The Bundle to store plus what the ACK and the Provenance need."""

    bundle: dict[str, Any]
    control_id: str
    message_type: str
    structure: str
    sending_application: str
    sending_facility: str
    content_hash: str
    message: er7.Message
    references: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The bytes of the documents the message carries, by the fullUrl of their Binary (its `data`
    # is their base64): stored from here, not decoded again (TransactionService.transaction).
    contents: dict[str, bytes] = field(default_factory=dict)


def content_hash(message: bytes) -> str:
    return hashlib.sha256(message).hexdigest()


def structure_of(message_type: str, event: str) -> str:
    """The structure whose map converts type^event; AR 200/201 when the adapter does not take it."""
    structures = load_json("structures.json")["map"]
    structure = structures.get(f"{message_type}^{event}")
    if structure is not None:
        return structure
    if any(key.startswith(f"{message_type}^") for key in structures):
        raise Hl7Error("AR", "201", f"event {event!r} of {message_type} messages is not supported", "MSH^1^9")
    raise Hl7Error("AR", "200", f"message type {message_type!r} is not supported", "MSH^1^9")


def convert_message(message: bytes) -> Hl7Conversion:
    """Convert a raw ER7 message; raises Hl7Error with the ACK code (AR/AE) when it cannot."""
    parsed = er7.parse(message)
    message_type, event = parsed.text("MSH-9.1"), parsed.text("MSH-9.2")
    control_id = parsed.text("MSH-10")
    if not message_type or not event:
        raise Hl7Error("AR", "101", "MSH-9 message type and trigger event are required", "MSH^1^9")
    if not control_id:
        raise Hl7Error("AR", "101", "MSH-10 message control id is required", "MSH^1^10")
    structure = structure_of(message_type, event)
    structure_map = load_json(f"{structure}.json")
    if event not in structure_map["events"]:
        raise Hl7Error("AR", "201", f"event {event!r} is not mapped for {structure}", "MSH^1^9")
    version = parsed.text("MSH-12.1")
    if "versions" in structure_map and version not in structure_map["versions"]:
        raise Hl7Error("AR", "203", f"{structure} is taken in HL7 v2 versions {', '.join(structure_map['versions'])}, not {version!r}", "MSH^1^12")
    engine = Engine(parsed, event, structure_map, FUNCTIONS)
    produced = engine.run()
    encoded: dict[str, bytes] = engine.state.get("encoded", {})
    return Hl7Conversion(
        bundle={"resourceType": "Bundle", "type": "transaction", "entry": [p.entry for p in produced]},
        control_id=control_id,
        message_type=f"{message_type}^{event}",
        structure=structure,
        sending_application=parsed.text("MSH-3"),
        sending_facility=parsed.text("MSH-4"),
        content_hash=content_hash(message),
        message=parsed,
        references=[p.reference for p in produced],
        warnings=parsed.warnings + engine.warnings,
        contents={p.entry["fullUrl"]: encoded[data] for p in produced
                  if p.entry["resource"]["resourceType"] == "Binary"
                  and isinstance(data := p.entry["resource"].get("data"), str) and data in encoded},
    )

