"""An HL7 v2 message as `POST /ingest/hl7v2` and the MLLP listener take it: parsed and converted
with the intake's own parser and maps (supported type and event, version, the segments and fields
the maps require), then each document it carries held to PDSm comprehensive like the intake does."""

from __future__ import annotations

from conformance.model import Requirement, Result, Verdict
from conformance.validate import findings
from conformance.validate.cda import pdsm_result
from fhir_server.ingest import pdsm
from fhir_server.ingest.hl7v2.convert import convert_message
from fhir_server.ingest.hl7v2.datatypes import table
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.mllp import START_BLOCK, END_BLOCK

TAGS = ("validate", "HL7v2")
MESSAGE = Requirement(
    "HL7v2.5", "2.9.2 original acknowledgment rules; 2.14.5 ERR segment",
    "[paraphrase] The receiver accepts a message it supports whose required segments and fields are present "
    "(AA); it rejects an unsupported message type, event or version (AR) and answers a message it cannot apply, "
    "such as one missing a required field, with AE, an ERR segment locating the error (HL7 table 0357).")


def validate(name: str, data: bytes) -> list[Result]:
    message = _unframed(data)
    title = f"{name}: a message the intake takes, with the fields it needs"
    try:
        conversion = convert_message(message)
    except Hl7Error as error:
        meaning = table("hl7-0357").get(error.code, "")
        where = f" at {error.location}" if error.location else ""
        return [Result("VALIDATE-HL7V2-message", title, TAGS, MESSAGE, Verdict.FAILED,
                       f"the intake answers {error.ack_code}, ERR {error.code} ({meaning}){where}: {error.message}")]
    remarks = [f"warning: {w}" for w in conversion.warnings]
    results = [Result("VALIDATE-HL7V2-message", title, TAGS, MESSAGE, Verdict.PASSED,
                      "\n".join([f"{conversion.message_type} ({conversion.structure}) converts to "
                                 f"{len(conversion.bundle['entry'])} resources", *remarks]))]
    documents = [e["resource"] for e in conversion.bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    for index, document in enumerate(documents):
        shown = name if len(documents) == 1 else f"{name} (document {index + 1})"
        results.append(pdsm_result(shown, "VALIDATE-HL7V2-pdsm", TAGS, pdsm.problems(document), conversion.warnings))
    return results


def _unframed(data: bytes) -> bytes:
    """The message without MLLP's framing, if the file kept it, and the blank space around it."""
    data = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if data.startswith(START_BLOCK):
        data = data[len(START_BLOCK):]
        end = data.find(END_BLOCK)
        data = data[:end] if end >= 0 else data
    return data.rstrip(b" \t\r\n") + b"\r"
