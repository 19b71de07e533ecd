"""The tolerant ER7 reader: segments, delimiters, repetitions, escapes, character sets."""

import pytest

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.escape import Delimiters, escape, unescape
from tests.hl7v2.conftest import fixture

HEADER = "MSH|^~\\&|APP|FAC|RCV|RFAC|20240301120000||ADT^A08^ADT_A01|C1|P|2.5|||||FRA|{charset}"


def message(*segments: str, charset: str = "UNICODE UTF-8", sep: str = "\r", encoding: str = "utf-8") -> bytes:
    return sep.join([HEADER.format(charset=charset), *segments]).encode(encoding)


def test_msh_fields_are_numbered_from_the_field_separator():
    parsed = er7.parse(message("PID|1"))
    assert parsed.text("MSH-1") == "|"
    assert parsed.text("MSH-3") == "APP"
    assert parsed.text("MSH-9.2") == "A08"
    assert parsed.text("MSH-18") == "UNICODE UTF-8"


def test_repetitions_components_and_subcomponents():
    parsed = er7.parse(message("PID|||A1^^^AUTH&1.2.3&ISO^PI~B2^^^OTHER&4.5&ISO^PI"))
    pid = parsed.first("PID")
    first, second = pid.repetitions(3)
    assert (first.get(1), first.get(4, 2), second.get(4, 1)) == ("A1", "1.2.3", "OTHER")
    assert parsed.text("PID-3(2).4.2") == "4.5"


@pytest.mark.parametrize(("raw", "decoded"), [
    ("a\\F\\b", "a|b"), ("a\\S\\b", "a^b"), ("a\\T\\b", "a&b"), ("a\\R\\b", "a~b"), ("a\\E\\b", "a\\b"),
    ("line\\.br\\next", "line\nnext"), ("\\X4F4B\\", "OK"), ("\\H\\bold\\N\\", "bold"), ("end\\", "end\\"),
])
def test_escape_sequences(raw, decoded):
    assert unescape(raw, Delimiters()) == decoded


def test_escape_round_trip():
    text = "a|b^c~d&e\\f\nnext"
    assert unescape(escape(text, Delimiters()), Delimiters()) == text


def test_latin1_message_is_decoded_from_msh18():
    parsed = er7.parse(message("PID|||1^^^A&1.2&ISO||MÜLLER^JOSÉ", charset="8859/1", encoding="latin-1"))
    assert parsed.text("PID-5.1") == "MÜLLER"
    assert parsed.delimiters.codec == "iso8859-1"


def test_undeclared_latin1_falls_back_with_a_warning():
    parsed = er7.parse(message("PID|||1||MÜLLER", charset="UNICODE UTF-8", encoding="latin-1"))
    assert parsed.text("PID-5") == "MÜLLER"
    assert parsed.warnings


def test_line_feeds_garbage_before_msh_and_z_segments_are_tolerated():
    raw = b"\x00junk" + message("PID|||1", "ZBE|MVT-1|20240301", sep="\r\n")
    parsed = er7.parse(raw)
    assert [s.name for s in parsed.segments] == ["MSH", "PID", "ZBE"]
    assert parsed.text("ZBE-1") == "MVT-1"


def test_stray_line_break_in_text_is_joined_to_its_segment():
    parsed = er7.parse(message("OBX|1|TX|x||first part", "second part"))
    assert [s.name for s in parsed.segments] == ["MSH", "OBX"]
    assert parsed.first("OBX").value(5).text() == "first part\nsecond part"


def test_explicit_null_reads_as_no_value():
    assert er7.parse(message('PID|||1||""')).text("PID-5") == ""


def test_no_msh_is_refused():
    with pytest.raises(Hl7Error) as raised:
        er7.parse(fixture("malformed_no_msh.hl7"))
    assert (raised.value.ack_code, raised.value.code) == ("AR", "100")
