"""HL7 v2 over MLLP: the original-mode acknowledgement rules of HL7 v2.5 chapter 2 (MSA-1 AA/AE/AR,
MSA-2 echoing MSH-10, an ERR segment naming what was wrong). Needs --mllp HOST:PORT."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from conformance import mllp
from conformance.documents import test_oid
from conformance.registry import case
from conformance.model import Exchange
from conformance.session import Failed, NotRun, Session, body_json

V25 = "HL7v2.5"
MSA2_TEXT = ("[MSA-2 Message Control ID] This field contains the message control ID of the message sent by the "
             "sending system. It allows the sending system to associate this response with the message for which "
             "it is intended.")


def _send(s: Session, message: str) -> str:
    if s.options.mllp is None:
        raise NotRun("needs the server's MLLP listener: --mllp HOST:PORT")
    host, port = s.options.mllp
    exchange = Exchange("MLLP", f"mllp://{host}:{port}", request_body=message.replace("\r", "\n"))
    s.exchanges.append(exchange)
    try:
        ack = mllp.send(host, port, message, s.options.timeout)
    except OSError as error:
        exchange.error = f"{type(error).__name__}: {error}"
        raise
    exchange.response_body = ack.replace("\r", "\n")
    return ack


def _message(s: Session, message_type: str, pid3: str, control_id: str) -> str:
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return "\r".join([
        f"MSH|^~\\&|FHIRCONFORMANCE|FHIRCONF|FHIRSRV|DMP|{now}||{message_type}|{control_id}|P|2.5|||||FRA|UNICODE UTF-8",
        f"EVN||{now}",
        f"PID|||{pid3}||CONFORMANCE^TEST^^^^^L||20000101|U",
        "PV1|1|N"]) + "\r"


def _check_ack(ack: str, control_id: str, codes: set[str]) -> str:
    code = mllp.field(ack, "MSA", 1)
    if not ack.startswith("MSH"):
        raise Failed(f"the answer is not an HL7 v2 message: {ack[:200]!r}")
    if code not in codes:
        raise Failed(f"MSA-1 is {code!r}, expected {' or '.join(sorted(codes))}")
    if mllp.field(ack, "MSA", 2) != control_id:
        raise Failed(f"MSA-2 is {mllp.field(ack, 'MSA', 2)!r}, not the MSH-10 sent ({control_id})")
    return code


@case("HL7V2-01", "An accepted message is acknowledged AA with MSA-2 = the message's MSH-10", ["HL7v2", "MLLP"],
      V25, "2.14.8 MSA segment; 2.9.2 original acknowledgment rules", MSA2_TEXT)
def accepted(s: Session) -> None:
    control_id = uuid.uuid4().hex[:20]
    authority, value = test_oid(), s.unique("ipp")
    ack = _send(s, _message(s, "ADT^A28^ADT_A05", f"{value}^^^FHIRCONF&{authority}&ISO^PI", control_id))
    try:
        _check_ack(ack, control_id, {"AA", "CA"})
    finally:
        # What the message created is the run's: found by the test-only identifier and deleted at the end.
        found = s.get("Patient", params={"identifier": f"urn:oid:{authority}|{value}"})
        for entry in body_json(found).get("entry", []):
            s.remember("Patient", entry["resource"]["id"])


@case("HL7V2-02", "An unsupported message type is rejected (AR, or AE) with an ERR segment", ["HL7v2", "MLLP"],
      V25, "2.9.2.1 original acknowledgment rules; table 0008 AR; table 0357 code 200",
      "[HL7 table 0008, as restated in Microsoft BizTalk Accelerator for HL7's MSA documentation] AR, Application "
      "Reject: a problem occurred at the receiving location related to the value in MSH-9 (message type), MSH-11 "
      "(processing ID), or MSH-12 (version ID) [HL7 table 0357: 200 \u201cUnsupported message type\u201d, carried "
      "in ERR]. " + MSA2_TEXT)
def unsupported_type(s: Session) -> None:
    control_id = uuid.uuid4().hex[:20]
    ack = _send(s, _message(s, "ZZZ^Z99^ZZZ_Z99", f"{s.unique('ipp')}^^^FHIRCONF&{test_oid()}&ISO^PI", control_id))
    _check_ack(ack, control_id, {"AR", "AE", "CR", "CE"})
    if not mllp.segments(ack, "ERR"):
        raise Failed("the rejection carries no ERR segment saying why")


@case("HL7V2-03", "A message missing a required field is answered AE (or AR) with an ERR segment",
      ["HL7v2", "MLLP"], V25, "2.9.2.1; table 0008 AE; ERR segment; table 0357 code 101",
      "[HL7 table 0008, as restated in Microsoft BizTalk Accelerator for HL7's MSA documentation] AE, Application "
      "Error: a processing problem related to the message or its structure occurred at the receiving application "
      "[HL7 table 0357: 101 \u201cRequired field missing\u201d, carried in ERR]. " + MSA2_TEXT)
def missing_patient_identifier(s: Session) -> None:
    control_id = uuid.uuid4().hex[:20]
    ack = _send(s, _message(s, "ADT^A28^ADT_A05", "", control_id))
    _check_ack(ack, control_id, {"AE", "AR", "CE", "CR"})
    if not mllp.segments(ack, "ERR"):
        raise Failed("the error acknowledgement carries no ERR segment saying why")
