"""Named functions the maps call with `{"$fn": ...}` for what is more than a field copy."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from typing import Any

from cda import correspondence
from cda.document_reference import PDSM_COMPREHENSIVE
from fhir_server.ingest.hl7v2 import carried_document
from fhir_server.ingest.hl7v2.datatypes import cx_identifier, document_identifier, table
from fhir_server.ingest.hl7v2.engine import Engine, Function, Scope, identifier_token, stable_uuid
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.mapfiles import load_json


# The contained Patient as the message identified it (XDS sourcePatientInfo), named apart from
# the ids the CDA converter gives its own contained resources.
SOURCE_PATIENT = "source-patient"


def patient_identity(engine: Engine, args: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
    """The identifier that names the patient: the INS first, then a local id within its authority."""
    rules = load_json("identity.json")
    candidates = []
    for value in engine.values(args.get("path", "PID-3"), scope, every=True):
        identifier = cx_identifier(value)
        if identifier is None:
            continue
        if identifier.get("system") in rules["insTypes"] or value.get(5) in rules["insTypeCodes"]:
            rank = 0
        elif identifier.get("system") and value.get(5) in rules["localTypeCodes"]:
            rank = 1
        elif identifier.get("system"):
            rank = 2
        else:
            # An id without an assigning authority is ambiguous across senders: never an identity.
            continue
        candidates.append((rank, len(candidates), identifier))
    if not candidates:
        return None
    identity = min(candidates, key=lambda c: (c[0], c[1]))[2]
    return {"system": identity["system"], "value": identity["value"]}


def ed_content(engine: Engine, args: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
    """Binary contentType and data from the ED OBX-5 (source^type^subtype^encoding^data) of the
    first OBX that matches `where`."""
    carrier = next(engine.iterate({"segment": "OBX", "where": args.get("where", {})}, scope), None)
    values = engine.values("OBX-5", carrier, every=False) if carrier is not None else []
    if not values:
        return None
    ed = values[0]
    kinds = table("ed-content-types")
    content_type = kinds.get(ed.get(3).upper()) or kinds.get(ed.get(2).upper()) or "application/octet-stream"
    encoding = ed.get(4).upper()
    payload = ed.get(5)
    try:
        if encoding == "BASE64":
            data = _base64(engine, payload)
        elif encoding == "HEX":
            data = bytes.fromhex(payload)
        else:
            data = payload.encode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise Hl7Error("AE", "102", f"the document in OBX-5 cannot be decoded: {exc}", "OBX^1^5") from exc
    return _binary(engine, args, content_type, data)


def _base64(engine: Engine, payload: str) -> bytes:
    """Base64 as senders send it: line breaks tolerated, missing final padding restored."""
    compact = "".join(payload.split())
    if len(compact) % 4:
        engine.warnings.append("OBX-5 base64 lacked its final padding; padding restored")
        compact += "=" * (-len(compact) % 4)
    return binascii.a2b_base64(compact)


def text_document(engine: Engine, args: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
    """A plain-text document from the OBX TX lines of the scope (one line per OBX or repetition)."""
    lines = []
    for segment in scope.all("OBX"):
        if segment.raw_field(2) in ("TX", "FT", "ST"):
            lines.extend(value.text() for value in segment.repetitions(5))
    if not lines:
        return None
    return _binary(engine, args, "text/plain; charset=utf-8", "\n".join(lines).encode("utf-8"))


def _binary(engine: Engine, args: dict[str, Any], content_type: str, data: bytes) -> dict[str, Any]:
    engine.state.setdefault("documents", {})[args["name"]] = (content_type, data)
    text = base64.b64encode(data).decode("ascii")
    # The bytes by their base64, for the conversion to hand over with the Binary holding it.
    engine.state.setdefault("encoded", {})[text] = data
    return {"contentType": content_type, "data": text}


def attachment(engine: Engine, args: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
    """DocumentReference.content.attachment pointing at the Binary the map produced."""
    produced = scope.lookup(args["binary"])
    document = engine.state.get("documents", {}).get(args["binary"])
    if produced is None or document is None:
        return None
    content_type, data = document
    result: dict[str, Any] = {"contentType": content_type, "url": produced.reference}
    result["size"] = len(data)
    result["hash"] = base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")
    # What the message says of the document itself (a carried CDA says it too, and is read after).
    for element in ("language", "title", "creation"):
        if value := engine.evaluate(args.get(element), scope):
            result[element] = value
    return result


def document_identity(engine: Engine, args: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
    """The document's masterIdentifier, the same as every other channel gives it
    (cda.document_id): the carried CDA's ClinicalDocument/id, else the message's own id of the
    document (`field`, an EI: TXA-12, OBR-3). With `mustMatch`, a message that names another
    document than the CDA it carries is refused: one document cannot have two identities."""
    conversion = carried_document.conversion(engine, args["binary"])
    carried = dict(conversion.master_identifier) if conversion is not None else None
    values = engine.values(args["field"], scope, every=False)
    stated = document_identifier(values[0]) if values else None
    if carried is not None and stated is not None and args.get("mustMatch") and stated != carried:
        raise Hl7Error(
            "AE", "204",
            f"{args['field']} names document {identifier_token(stated)} but the CDA it carries is "
            f"{identifier_token(carried)} (ClinicalDocument/id)",
            args.get("location", ""),
        )
    return carried or stated


def pdsm_document(engine: Engine, args: dict[str, Any], scope: Scope) -> None:
    """After-hook: what a DocumentReference of the shared record holds beyond the message's fields
    (PDSm comprehensive): the profile it claims, the class of its type (ANS ASS_X04), the format,
    title and language of a document that is not a CDA, the times of the act and of the
    document when neither the message nor its CDA states them (`periodStart`, `creation`), and the
    patient as the sender identified it."""
    resource = args["produced"].entry["resource"]
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "meta")}
    meta = {**resource.get("meta", {}), "profile": [PDSM_COMPREHENSIVE]}
    resource.clear()
    resource.update(resourceType="DocumentReference", meta=meta, **rest)
    if "category" not in resource:
        found = correspondence.document_class((resource.get("type") or {}).get("coding", []))
        if found is not None:
            resource["category"] = [{"coding": [found]}]
    content = (resource.get("content") or [{}])[0]
    attachment = content.get("attachment")
    if attachment and "creation" not in attachment and (creation := engine.evaluate(args.get("creation"), scope)):
        attachment["creation"] = creation
    if attachment and carried_document.conversion(engine, args["binary"]) is None:
        # Not a CDA: its MIME type describes it, its type names it, the message's language is its own.
        content.setdefault("format", correspondence.not_cda_format())
        type_names = [c["display"] for c in (resource.get("type") or {}).get("coding", []) if c.get("display")]
        if type_names:
            attachment.setdefault("title", type_names[0])
        if language := engine.read_text("/MSH-19.1", scope):
            attachment.setdefault("language", language)
    patient = scope.lookup("patient")
    context = resource.setdefault("context", {})
    # The act's time as the CDA states it (serviceEvent) wins; the message's is the fallback.
    if "period" not in context and (start := engine.evaluate(args.get("periodStart"), scope)):
        context["period"] = {"start": start}
    if patient is not None and "sourcePatientInfo" not in context:
        source = {k: v for k, v in copy.deepcopy(patient.entry["resource"]).items() if k not in ("id", "meta")}
        resource["contained"] = [*resource.get("contained", []), {**source, "id": SOURCE_PATIENT}]
        context["sourcePatientInfo"] = {"reference": f"#{SOURCE_PATIENT}"}


def reference_to(engine: Engine, args: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
    """A Reference to a resource written by identifier elsewhere in the bundle, for links that
    point both ways (A40 merge: the survivor replaces the merged record, which is replaced-by it)."""
    identifier = engine.evaluate(args["identifier"], scope)
    if not identifier or not identifier.get("system"):
        return None
    return {"reference": f"urn:uuid:{stable_uuid(args['resourceType'], identifier_token(identifier))}"}


def fill_if_absent(engine: Engine, args: dict[str, Any], scope: Scope) -> None:
    """After-hook: a last-resort value for an element neither the message nor the CDA stated."""
    resource = args["produced"].entry["resource"]
    if args["element"] not in resource:
        value = engine.evaluate(args["value"], scope)
        if value:
            resource[args["element"]] = value


FUNCTIONS: dict[str, Function] = {
    "patientIdentity": patient_identity,
    "edContent": ed_content,
    "textDocument": text_document,
    "attachment": attachment,
    "documentIdentity": document_identity,
    "pdsmDocument": pdsm_document,
    "referenceTo": reference_to,
    "enrichFromCda": carried_document.enrich,
    "fillIfAbsent": fill_if_absent,
}
