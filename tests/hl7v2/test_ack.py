"""Acknowledgements: MSA, ERR with table 0357 code and location, charset and delimiters of the message."""

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.hl7v2.ack import build_ack, read_header
from fhir_server.ingest.hl7v2.errors import Hl7Error
from tests.hl7v2.conftest import fixture


def test_accept_echoes_the_control_id_and_swaps_sender_and_receiver():
    ack = build_ack(read_header(fixture("adt_a01.hl7")), "AA")
    parsed = er7.parse(ack)
    assert [s.name for s in parsed.segments] == ["MSH", "MSA"]
    assert (parsed.text("MSH-3"), parsed.text("MSH-4"), parsed.text("MSH-5"), parsed.text("MSH-6")) == (
        "FHIRSRV", "DMP", "PAM", "CHEXEMPLE")
    assert parsed.text("MSH-9") == "ACK"
    assert parsed.text("MSH-9.2") == "A01"
    assert (parsed.text("MSA-1"), parsed.text("MSA-2")) == ("AA", "ADT-A01")
    assert parsed.text("MSH-10") != "ADT-A01"


def test_error_carries_code_location_and_readable_message():
    error = Hl7Error("AE", "101", "TXA-12 unique document number is required", "TXA^1^12")
    parsed = er7.parse(build_ack(read_header(fixture("mdm_t02.hl7")), "AE", error))
    assert parsed.text("MSA-1") == "AE"
    assert parsed.text("ERR-2") == "TXA"
    assert parsed.first("ERR").value(2).raw == "TXA^1^12"
    assert (parsed.text("ERR-3.1"), parsed.text("ERR-3.2"), parsed.text("ERR-3.3")) == ("101", "Required field missing", "HL70357")
    assert parsed.text("ERR-4") == "E"
    assert parsed.text("ERR-8") == "TXA-12 unique document number is required"


def test_ack_uses_the_charset_of_the_message_and_escapes_delimiters():
    header = read_header(fixture("mdm_t02_text_latin1.hl7"))
    ack = build_ack(header, "AE", Hl7Error("AE", "207", "échec | réessayer"))
    assert "échec".encode("latin-1") in ack
    parsed = er7.parse(ack)
    assert parsed.text("MSH-18") == "8859/1"
    assert parsed.text("ERR-8") == "échec | réessayer"


def test_versions_before_2_5_get_err_1_and_msa_3():
    old = fixture("adt_a01.hl7").replace(b"|P|2.5|", b"|P|2.3|")
    error = Hl7Error("AR", "200", "message type 'QRY' is not supported", "MSH^1^9")
    parsed = er7.parse(build_ack(read_header(old), "AR", error))
    assert parsed.text("MSA-3") == "message type 'QRY' is not supported"
    err = parsed.first("ERR").value(1)
    assert (err.get(1), err.get(3), err.get(4, 1)) == ("MSH", "9", "200")


def test_header_of_a_message_without_msh_still_gives_an_ack():
    parsed = er7.parse(build_ack(read_header(b"not hl7 at all"), "AR", Hl7Error("AR", "100", "no MSH", "MSH^1^1")))
    assert parsed.text("MSA-1") == "AR"
