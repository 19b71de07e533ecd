"""HL7 v2 adapter: ER7 messages to FHIR transactions through declarative maps, with ACKs."""

from fhir_server.ingest.hl7v2.convert import Hl7Conversion, convert_message
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.intake import Hl7Result, ack_handler, handle_message

__all__ = ["Hl7Conversion", "Hl7Error", "Hl7Result", "ack_handler", "convert_message", "handle_message"]
