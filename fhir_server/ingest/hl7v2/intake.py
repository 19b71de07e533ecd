"""Intake of one HL7 v2 message: convert, store in one transaction, then acknowledge.

The raw message is stored with what it produced (a Binary and a Provenance whose targets are
the produced resources), in the same transaction. The Provenance id derives from the sender,
MSH-10 and the content hash: when it already exists the message was processed and the same AA
is returned without converting again. A repeated MSH-10 with other content is another message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

from fhir_server import facilities
from fhir_server.errors import FhirError
from fhir_server.facilities import custodian_identifiers, sending_facility_identifier
from fhir_server.ingest import pdsm
from fhir_server.ingest.hl7v2.ack import MessageHeader, build_ack, read_header
from fhir_server.ingest.hl7v2.convert import Hl7Conversion, content_hash, convert_message
from fhir_server.ingest.hl7v2.datatypes import dtm_instant, table
from fhir_server.ingest.hl7v2.engine import stable_uuid
from fhir_server.ingest.hl7v2.er7 import Value
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.mapfiles import load_json
from fhir_server.ingest.hl7v2.patient_held import keep_patient_held
from fhir_server.timefmt import now_instant

logger = logging.getLogger(__name__)

RAW_CONTENT_TYPE = "x-application/hl7-v2+er7"
_HTTP_STATUS = {"AA": 200, "AR": 400, "AE": 422}
# HL7 table 0357 has no code for a sender not allowed to store something: 207 with ERR-8 saying why.
FORBIDDEN_CONDITION = "207"


class TransactionRepository(Protocol):
    async def transaction(self, bundle: dict[str, Any], contents: Mapping[str, bytes] | None = None) -> dict[str, Any]: ...

    async def find_current(self, resource_type: str, resource_id: str) -> Any: ...

    async def find_by_identifier(self, resource_type: str, token: str) -> list[dict[str, Any]]: ...

    @property
    def facilities(self) -> facilities.Remembered: ...


@dataclass
class Hl7Result:
    ack: bytes
    status: str
    control_id: str
    message_type: str = ""
    error: Hl7Error | None = None
    duplicate: bool = False
    warnings: list[str] = field(default_factory=list)
    # The sender's scopes do not allow storing what the message holds.
    forbidden: bool = False
    # The transaction-response of what the message stored (of a dry run: would have stored).
    stored: dict[str, Any] | None = None

    @property
    def http_status(self) -> int:
        """For `POST /ingest/hl7v2`: 200 for AA, 400 for AR, 422 for AE, 403 when the caller may not
        store what the message holds, 503 when storage failed (the sender should send it again later)."""
        if self.forbidden:
            return 403
        if self.error is not None and self.error.code == "207":
            return 503
        return _HTTP_STATUS[self.status]


def provenance_id(header: MessageHeader, message: bytes) -> str:
    return stable_uuid("Provenance", header.sending_application, header.sending_facility, header.control_id, content_hash(message))


async def handle_message(message: bytes, repository: TransactionRepository) -> Hl7Result:
    """Process one message; every failure becomes an AE/AR acknowledgement, never an exception."""
    header = read_header(message)
    try:
        trace_id = provenance_id(header, message)
        if await repository.find_current("Provenance", trace_id) is not None:
            return Hl7Result(build_ack(header, "AA"), "AA", header.control_id, duplicate=True)
        conversion = convert_message(message)
        await complete_documents(conversion, repository)
        await keep_patient_held(conversion.bundle, repository)
        bundle, contents = with_trace(conversion, header, message, trace_id)
        stored = await repository.transaction(bundle, contents)
    except Hl7Error as exc:
        return _refused(header, exc)
    except FhirError as exc:
        if exc.status == 403:
            # Sending it again will not help: AR, with what the sender's registration lacks.
            refusal = Hl7Error("AR", FORBIDDEN_CONDITION, f"not stored: {exc.diagnostics}")
            return Hl7Result(build_ack(header, "AR", refusal), "AR", header.control_id, error=refusal, forbidden=True)
        logger.warning("HL7 v2 message %s not stored: %s", header.control_id, exc)
        # The record refusing the content (a disguised file, a rule) is the sender's to fix: not 207.
        condition = table("refusal-condition").get(str(exc.status), "207") if exc.status < 500 else "207"
        return _refused(header, Hl7Error("AE", condition, f"not stored: {exc.diagnostics}"))
    except Exception:
        logger.exception("HL7 v2 message %s failed", header.control_id)
        return _refused(header, Hl7Error("AE", "207", "internal error while processing the message"))
    return Hl7Result(
        build_ack(header, "AA"), "AA", conversion.control_id, conversion.message_type, warnings=conversion.warnings,
        stored=stored,
    )


def ack_handler(repository: TransactionRepository) -> Callable[[bytes], Awaitable[bytes]]:
    """The MLLP handler: a message in, its acknowledgement out (sent only once stored)."""

    async def handle(message: bytes) -> bytes:
        return (await handle_message(message, repository)).ack

    return handle


async def complete_documents(conversion: Hl7Conversion, repository: TransactionRepository) -> None:
    """Each DocumentReference the message stores: what its sending facility's configuration
    supplies, then the PDSm check, refused with AE naming the fields it still lacks."""
    msh4 = [sending_facility_identifier(v) for v in (conversion.message.text("MSH-4.1"), conversion.message.text("MSH-4.2")) if v]
    for entry in conversion.bundle["entry"]:
        document = entry["resource"]
        if document["resourceType"] != "DocumentReference":
            continue
        facility = await facilities.find(repository.find_by_identifier, [*msh4, *custodian_identifiers(document)],
                                         repository.facilities)
        if facility is not None:
            facilities.apply_defaults(document, facility)
        found = pdsm.problems(document)
        if found:
            raise _incomplete(conversion, found, configured=facility is not None)


def _incomplete(conversion: Hl7Conversion, found: list[pdsm.Problem], *, configured: bool) -> Hl7Error:
    locations = load_json(f"{conversion.structure}.json").get("pdsmLocations", {})
    texts = [problem.explained(conversion.warnings) for problem in found]
    if not configured:
        texts.append(f"no sending facility is configured for MSH-4 {conversion.sending_facility!r} "
                     "(fhir-server facilities add) to supply what the message and its document lack")
    element = found[0].element.removeprefix("DocumentReference.")
    code = "101" if found[0].code == "required" else "102"
    return Hl7Error("AE", code, "the document cannot be shared as a PDSm DocumentReference: " + " | ".join(texts),
                    locations.get(element, ""))


def _refused(header: MessageHeader, error: Hl7Error) -> Hl7Result:
    return Hl7Result(build_ack(header, error.ack_code, error), error.ack_code, header.control_id, error=error)


def with_trace(conversion: Hl7Conversion, header: MessageHeader, message: bytes,
               trace_id: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The conversion's bundle plus the raw message (Binary) and its Provenance (`trace_id`), and
    the bytes of the bundle's Binaries by fullUrl: the raw message's Binary carries no `data`, its
    bytes are stored as they came rather than encoded in base64 to be decoded again."""
    binary_id = stable_uuid("Binary", "hl7v2-message", header.sending_application, header.sending_facility, header.control_id, conversion.content_hash)
    sender = load_json("defaults.json")["senderSystemPrefix"]
    recorded = dtm_instant(Value(conversion.message.text("MSH-7"), conversion.message.delimiters)) or now_instant()
    provenance = {
        "resourceType": "Provenance",
        "id": trace_id,
        "target": [{"reference": reference} for reference in conversion.references],
        "recorded": recorded,
        "activity": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0003",
            "code": conversion.message_type.split("^")[1],
        }]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]},
            "who": {
                "identifier": {"system": sender + quote(conversion.sending_facility or "unknown", safe="-._~"), "value": conversion.sending_application or "unknown"},
                "display": " / ".join(filter(None, (conversion.sending_application, conversion.sending_facility))) or "unknown sender",
            },
        }],
        "entity": [{"role": "source", "what": {"reference": f"Binary/{binary_id}", "display": f"HL7 v2 {conversion.message_type} {conversion.control_id}"}}],
    }
    raw = {"resourceType": "Binary", "id": binary_id, "contentType": RAW_CONTENT_TYPE}
    bundle = {
        **conversion.bundle,
        "entry": [
            *conversion.bundle["entry"],
            {"fullUrl": f"urn:uuid:{binary_id}", "resource": raw, "request": {"method": "PUT", "url": f"Binary/{binary_id}"}},
            {"fullUrl": f"urn:uuid:{trace_id}", "resource": provenance, "request": {"method": "PUT", "url": f"Provenance/{trace_id}"}},
        ],
    }
    return bundle, {**conversion.contents, f"urn:uuid:{binary_id}": message}
