"""HL7 v2 acknowledgements: MSA-1 AA/AE/AR, MSA-2 the incoming MSH-10, ERR with a table 0357 code.

The ACK answers in the incoming message's delimiters, version and character set, so a sender
that parses its own messages can parse the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.hl7v2.charset import codec_for, declared_charset
from fhir_server.ingest.hl7v2.datatypes import table
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.escape import Delimiters, escape
from fhir_server.ingest.hl7v2.mapfiles import load_json

# MSH-10 is at most 20 characters up to v2.5: the ACK's own control id must fit.
_CONTROL_ID_LENGTH = 20


@dataclass(frozen=True)
class MessageHeader:
    """The MSH fields an ACK echoes, read tolerantly (defaults when the message has no MSH)."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    trigger_event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5"
    country: str = ""
    charset: str = ""
    delimiters: Delimiters = Delimiters()


def read_header(message: bytes) -> MessageHeader:
    """The header of any message, even one the converter refuses; never raises."""
    label = declared_charset(message)
    codec = codec_for(label) or "utf-8"
    start = message.find(b"MSH")
    if start < 0:
        return MessageHeader(delimiters=Delimiters(codec=codec))
    end = min((p for p in (message.find(b"\r", start), message.find(b"\n", start)) if p >= 0), default=len(message))
    try:
        parsed = er7.parse(message[start:end])
    except Hl7Error:
        return MessageHeader(delimiters=Delimiters(codec=codec))
    raw = parsed.msh.raw_field
    return MessageHeader(
        sending_application=raw(3),
        sending_facility=raw(4),
        receiving_application=raw(5),
        receiving_facility=raw(6),
        trigger_event=parsed.text("MSH-9.2"),
        control_id=parsed.text("MSH-10"),
        processing_id=raw(11) or "P",
        version=parsed.text("MSH-12") or "2.5",
        country=raw(17),
        charset=label,
        delimiters=parsed.delimiters,
    )


def _timestamp() -> str:
    return datetime.now(ZoneInfo(load_json("defaults.json")["timezone"])).strftime("%Y%m%d%H%M%S%z")


def _modern(version: str) -> bool:
    """ERR-2..ERR-8 exist from v2.5; earlier versions only have ERR-1 and MSA-3."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (2, 5)


def build_ack(header: MessageHeader, ack_code: str, error: Hl7Error | None = None) -> bytes:
    d = header.delimiters
    f = d.field
    encoding_characters = d.component + d.repetition + d.escape + d.subcomponent
    ack_control = ("A" + header.control_id)[:_CONTROL_ID_LENGTH] if header.control_id else "ACK"
    msh = [
        "MSH", encoding_characters,
        header.receiving_application, header.receiving_facility,
        header.sending_application, header.sending_facility,
        _timestamp(), "",
        d.component.join(("ACK", escape(header.trigger_event, d), "ACK")) if header.trigger_event else "ACK",
        escape(ack_control, d), header.processing_id, escape(header.version, d),
        "", "", "", "", header.country, header.charset,
    ]
    msa = ["MSA", ack_code, escape(header.control_id, d)]
    segments = [f.join(msh).rstrip(f), None, None]
    if error is None:
        segments[1] = f.join(msa)
    elif _modern(header.version):
        segments[1] = f.join(msa)
        code = d.component.join((error.code, escape(table("hl7-0357").get(error.code, ""), d), "HL70357"))
        location = error.location.replace("^", d.component)
        segments[2] = f.join(["ERR", "", location, code, "E", "", "", "", escape(error.message, d)])
    else:
        segments[1] = f.join([*msa, escape(error.message, d)])
        sub = d.subcomponent or d.component
        location = error.location.replace("^", d.component)
        code = sub.join((error.code, escape(table("hl7-0357").get(error.code, ""), d), "HL70357"))
        segments[2] = f.join(["ERR", d.component.join(filter(None, (location, code)))])
    text = "\r".join(s for s in segments if s) + "\r"
    return text.encode(d.codec, errors="replace")
