"""Acknowledgements: MSA, ERR with table 0357 code and location, charset and delimiters of the message."""

import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

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


# The whole acknowledgement, field by field: what a sender's engine parses. MSH-7 is checked apart.
TIMESTAMP = re.compile(r"[|#](\d{14}[+-]\d{4})[|#]")


def without_time(ack: bytes, codec: str = "utf-8") -> str:
    text = ack.decode(codec)
    stamp = TIMESTAMP.search(text)
    assert stamp, text
    sent = datetime.strptime(stamp.group(1), "%Y%m%d%H%M%S%z")
    assert abs((datetime.now(timezone.utc) - sent).total_seconds()) < 60
    assert sent.utcoffset() == datetime.now(ZoneInfo("Europe/Paris")).utcoffset()
    return text.replace(stamp.group(1), "<time>", 1)


def test_accept_in_full():
    ack = build_ack(read_header(fixture("adt_a01.hl7")), "AA")
    assert without_time(ack) == (
        "MSH|^~\\&|FHIRSRV|DMP|PAM|CHEXEMPLE|<time>||ACK^A01^ACK|AADT-A01|P|2.5|||||FRA|UNICODE UTF-8\r"
        "MSA|AA|ADT-A01\r")


def test_error_in_full():
    error = Hl7Error("AE", "207", "not stored: two patients", "PID^1^3")
    ack = build_ack(read_header(fixture("adt_a01.hl7")), "AE", error)
    assert without_time(ack).split("\r")[1:] == [
        "MSA|AE|ADT-A01", "ERR||PID^1^3|207^Application internal error^HL70357|E||||not stored: two patients", ""]


def test_error_before_2_5_in_full():
    message = fixture("adt_a01.hl7").replace(b"|P|2.5|", b"|T|2.4|")
    ack = build_ack(read_header(message), "AR", Hl7Error("AR", "200", "not supported", "MSH^1^9"))
    assert without_time(ack).split("\r") == [
        "MSH|^~\\&|FHIRSRV|DMP|PAM|CHEXEMPLE|<time>||ACK^A01^ACK|AADT-A01|T|2.4|||||FRA|UNICODE UTF-8",
        "MSA|AR|ADT-A01|not supported", "ERR|MSH^1^9^200&Unsupported message type&HL70357", ""]


@pytest.mark.parametrize(("version", "modern"), [("2.5", True), ("2.5.1", True), ("2.6", True), ("2.10", True),
                                                 ("2.4", False), ("2.3.1", False), ("2.1", False), ("x.y", True)])
def test_err_segment_follows_the_version(version: str, modern: bool):
    message = fixture("adt_a01.hl7").replace(b"|P|2.5|", f"|P|{version}|".encode())
    parsed = er7.parse(build_ack(read_header(message), "AE", Hl7Error("AE", "207", "failed", "PID^1^3")))
    assert parsed.text("MSH-12") == version
    assert (parsed.text("ERR-4"), parsed.text("MSA-3")) == (("E", "") if modern else ("", "failed"))


def test_ack_answers_in_the_message_delimiters():
    message = fixture("adt_a01.hl7").replace(b"^", b"$").replace(b"|", b"#")
    ack = build_ack(read_header(message), "AE", Hl7Error("AE", "101", "PID-3 is required", "PID^1^3"))
    text = without_time(ack).replace("#", "|")
    assert text.startswith("MSH|$~\\&|FHIRSRV|DMP|PAM|CHEXEMPLE|<time>||ACK$A01$ACK|AADT-A01|")
    assert "\rERR||PID$1$3|101$Required field missing$HL70357|E||||PID-3 is required\r" in text


def test_delimiters_in_echoed_values_are_escaped():
    message = fixture("adt_a01.hl7").replace(b"|ADT-A01|", b"|ID|WITH^BAR|")
    header = read_header(message)
    ack = build_ack(header, "AE", Hl7Error("AE", "207", "a|b^c&d~e\\f"))
    parsed = er7.parse(ack)
    assert parsed.text("MSA-2") == header.control_id
    assert parsed.text("ERR-8") == "a|b^c&d~e\\f"
    assert b"a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f" in ack


def test_control_id_of_the_ack_fits_twenty_characters():
    message = fixture("adt_a01.hl7").replace(b"|ADT-A01|", b"|12345678901234567890|")
    parsed = er7.parse(build_ack(read_header(message), "AA"))
    assert parsed.text("MSH-10") == "A1234567890123456789"
    assert parsed.text("MSA-2") == "12345678901234567890"


def test_message_without_control_id_or_trigger():
    message = fixture("adt_a01.hl7").replace(b"|ADT^A01^ADT_A01|ADT-A01|", b"|ADT|||")
    parsed = er7.parse(build_ack(read_header(message), "AA"))
    assert (parsed.text("MSH-9"), parsed.text("MSH-10"), parsed.text("MSA-2")) == ("ACK", "ACK", "")
    assert parsed.first("MSH").value(9).raw == "ACK"


def test_header_defaults_when_the_message_leaves_them_out():
    message = b"MSH|^~\\&|APP|FAC|||20240301||ADT^A01|C1\rPID|1\r"
    header = read_header(message)
    assert (header.sending_application, header.sending_facility, header.receiving_application) == ("APP", "FAC", "")
    assert (header.processing_id, header.version, header.charset, header.country) == ("P", "2.5", "", "")
    assert header.control_id == "C1" and header.trigger_event == "A01"


@pytest.mark.parametrize("separator", [b"\r", b"\n", b"\r\n"])
def test_header_is_read_up_to_the_end_of_the_msh_segment(separator: bytes):
    message = b"\x0bjunk" + separator + b"MSH|^~\\&|APP|FAC|||20240301||ADT^A01|C2|P|2.4" + separator + b"PID|1|C3|"
    header = read_header(message)
    assert (header.control_id, header.version, header.sending_application) == ("C2", "2.4", "APP")


def test_header_of_an_unreadable_msh_keeps_the_declared_charset():
    header = read_header(b"MSH")
    assert header.control_id == "" and header.delimiters.codec == "utf-8"
    latin = read_header(b"MSH|^~\\&|\xe9|||||||||||||||8859/1\r")
    assert latin.delimiters.codec in ("latin-1", "iso8859-1", "iso-8859-1", "cp1252")
    assert latin.sending_application == "é"


def test_ack_replaces_what_its_charset_cannot_carry():
    header = read_header(fixture("mdm_t02_text_latin1.hl7"))
    ack = build_ack(header, "AE", Hl7Error("AE", "207", "échec ✗"))
    assert "échec ?".encode("latin-1") in ack


def test_code_outside_table_0357_is_sent_without_text():
    for version in (b"2.5", b"2.4"):
        message = fixture("adt_a01.hl7").replace(b"|P|2.5|", b"|P|" + version + b"|")
        ack = without_time(build_ack(read_header(message), "AE", Hl7Error("AE", "999", "odd", "PID^1^3")))
        assert ("|999^^HL70357|" if version == b"2.5" else "^999&&HL70357") in ack


def test_ack_of_a_header_with_nothing_after_msh_12_ends_there():
    ack = build_ack(read_header(b"MSH|^~\\&|APP|FAC|||20240301||ADT^A01|C1|P|2.5\rPID|1\r"), "AA")
    assert without_time(ack) == "MSH|^~\\&|||APP|FAC|<time>||ACK^A01^ACK|AC1|P|2.5\rMSA|AA|C1\r"


def test_error_before_2_5_in_the_message_delimiters():
    message = fixture("adt_a01.hl7").replace(b"|P|2.5|", b"|P|2.4|").replace(b"^", b"$").replace(b"&", b"*")
    ack = build_ack(read_header(message), "AE", Hl7Error("AE", "101", "required", "PID^1^3"))
    assert without_time(ack).split("\r")[2] == "ERR|PID$1$3$101*Required field missing*HL70357"


@pytest.mark.parametrize("prefix", [b"x" * 12 + b"\r", b"x" * 9 + b"\n", b"\x0b"])
def test_header_is_found_after_bytes_before_msh(prefix: bytes):
    header = read_header(prefix + fixture("adt_a01.hl7"))
    assert (header.control_id, header.sending_application, header.version) == ("ADT-A01", "PAM", "2.5")


def test_header_is_the_first_msh_not_one_quoted_later():
    message = fixture("adt_a01.hl7") + b"NTE|1||MSH|^~\\&|OTHER|FAC|||||ADT^A08|NOT-THIS|P|2.3\r"
    header = read_header(message)
    assert (header.control_id, header.sending_application, header.version) == ("ADT-A01", "PAM", "2.5")


def test_header_with_empty_encoding_characters_is_read():
    """MSH-2 may be empty ('MSH||...'): the default component delimiter applies, nothing raises."""
    header = read_header(b"MSH||APP|FAC|||20240301||ADT^A01|C1|P|2.5|||||FRA|8859/1\rPID|1\r")
    assert (header.control_id, header.trigger_event, header.delimiters.codec) == ("C1", "A01", "iso8859-1")
    ack = build_ack(header, "AR", Hl7Error("AR", "100", "MSH-2 manquant: é", "MSH^1^2"))
    assert "MSH-2 manquant: é".encode("latin-1") in ack
