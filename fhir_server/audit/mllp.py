"""The audit of HL7 v2 over MLLP: one AuditEvent per message, stored before its ACK is sent.

The listener has no HTTP edge, so this wraps its handler: the message's trace collects what it
wrote through the same hooks as HTTP requests; the caller is the sender as
fhir_server.ingest.senders knows it (anonymous when refused). If the event cannot be stored the
sender gets AE with an ERR segment instead of the ACK, never an unaudited AA.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fhir_server.audit import trace as tracing
from fhir_server.audit.events import Interaction, build
from fhir_server.audit.store import AuditUnavailable
from fhir_server.audit.writer import AuditWriter
from fhir_server.ingest.hl7v2.ack import MessageHeader, build_ack, read_header
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.intake import FORBIDDEN_CONDITION
from fhir_server.ingest.mllp import Handler
from fhir_server.security.callers import Caller
from fhir_server.storage import command_log
from fhir_server.timefmt import now_instant

log = logging.getLogger("fhir_server.audit")
ACCEPTED = frozenset({"AA", "CA"})
REFUSED = frozenset({"AR", "CR"})


def _ack_code(ack: bytes) -> str:
    """MSA-1 of an ACK ('' when it has none)."""
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA") and len(segment) > 3:
            return segment.split(segment[3:4])[1].decode("ascii", "replace") if len(segment) > 4 else ""
    return ""


def audited(handler: Handler, sender: Callable[[MessageHeader], Caller | None], writer: AuditWriter) -> Handler:
    async def handle(message: bytes) -> bytes:
        started = now_instant()
        trace = tracing.begin()
        header = read_header(message)
        command_log.attribute(f"MLLP {header.trigger_event or 'unknown'} {header.control_id}".rstrip())
        ack = await handler(message)
        code = _ack_code(ack)
        status = 200 if code in ACCEPTED else 403 if code in REFUSED and sender(header) is None else 400
        event = header.trigger_event or "unknown"
        interaction = Interaction("message", f"MLLP {event} {header.control_id}".rstrip(),
                                  message=(event, f"HL7 v2 {event}"))
        try:
            await writer.write(build(interaction, sender(header), status, trace, started, written_kept=status < 400))
        except AuditUnavailable as exc:
            if code not in ACCEPTED:
                # Nothing was stored and the sender is already told why: that answer stays.
                log.error("audit trail unavailable for refused HL7 v2 message %s: %s", header.control_id, exc)
                return ack
            log.error("audit trail unavailable, HL7 v2 message %s answered AE: %s", header.control_id, exc)
            return build_ack(header, "AE", Hl7Error("AE", FORBIDDEN_CONDITION,
                                                    "the message could not be written to the audit trail; resend later"))
        return ack

    return handle
