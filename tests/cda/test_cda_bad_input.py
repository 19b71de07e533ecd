"""Documents that must be refused, each with its own error code, without reading anything."""

import re

import pytest

from cda.convert import convert_cda
from cda.errors import CdaError
from cda.safe_xml import parse_xml


def refused(data: bytes) -> CdaError:
    with pytest.raises(CdaError) as caught:
        convert_cda(data)
    return caught.value


def test_malformed_xml():
    error = refused(b"<ClinicalDocument xmlns='urn:hl7-org:v3'><id root='1.2'></ClinicalDocument>")
    assert error.code == "invalid-xml"


def test_empty_body():
    assert refused(b"").code == "invalid-xml"


def test_xxe_is_refused_and_reads_nothing(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    document = (
        f'<?xml version="1.0"?><!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>'
    ).encode()
    error = refused(document)
    assert error.code == "forbidden-xml"
    assert "TOP-SECRET-CONTENT" not in str(error)


def test_xxe_in_utf16_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    document = (
        f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>'
    ).encode("utf-16")
    assert refused(document).code == "forbidden-xml"


def test_billion_laughs_is_refused():
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol%d;" % (n - 1)) * 10}">' for n in range(1, 10)
    ]
    document = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{"".join(levels)}]>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol9;</title></ClinicalDocument>'
    ).encode()
    assert refused(document).code == "forbidden-xml"


def test_external_dtd_is_refused():
    document = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/cda.dtd"><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    assert refused(document).code == "forbidden-xml"


def test_xml_that_is_not_cda():
    error = refused(b'<?xml version="1.0"?><Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>')
    assert error.code == "not-cda"


def test_clinical_document_outside_the_hl7_namespace_is_not_cda():
    assert refused(b"<ClinicalDocument><id root='1.2.3'/></ClinicalDocument>").code == "not-cda"


def test_cda_without_patient(fixture_bytes):
    data = re.sub(rb"<recordTarget>.*?</recordTarget>", b"", fixture_bytes("cr_bio_lab_report"), flags=re.S)
    assert refused(data).code == "no-patient"


def test_cda_whose_patient_has_no_identifier(fixture_bytes):
    data = re.sub(rb"<id root=\"1\.2\.250\.1\.999\.3\.1\.1\"[^>]*/>", b"", fixture_bytes("cr_bio_lab_report"))
    assert refused(data).code == "no-patient"


def test_size_bound():
    with pytest.raises(CdaError) as caught:
        parse_xml(b"<a>" + b"x" * 2048 + b"</a>", max_bytes=1024)
    assert caught.value.code == "too-large"


def test_depth_bound():
    nested = b"<a>" * 60 + b"</a>" * 60
    assert parse_xml(nested, max_depth=60) is not None
    with pytest.raises(CdaError) as caught:
        parse_xml(nested, max_depth=59)
    assert caught.value.code == "forbidden-xml"
