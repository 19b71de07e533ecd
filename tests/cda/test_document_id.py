"""cda.document_id: the one masterIdentifier of a document, whichever way a channel states its id."""

import pytest

from cda.document_id import from_entity_identifier, master_identifier, normalized

OID = "1.2.250.1.999.1.1.7.20240301"


def test_a_root_alone_is_an_rfc_3986_urn_and_root_with_extension_a_system_and_value():
    assert master_identifier(OID) == {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{OID}"}
    assert master_identifier("1.2.250.1.999", "DOC-1") == {"system": "urn:oid:1.2.250.1.999", "value": "DOC-1"}
    assert master_identifier("A6F3C4E2-0B1D-4C5E-9F00-112233445566") == {
        "system": "urn:ietf:rfc:3986", "value": "urn:uuid:a6f3c4e2-0b1d-4c5e-9f00-112233445566",
    }


@pytest.mark.parametrize(("entity", "universal", "expected"), [
    (OID, "", master_identifier(OID)),  # the ANS MDM examples: TXA-12 = <id root>^<namespace>
    (OID, "1.2.250.1.999.1.1.7", master_identifier(OID)),  # the whole id, under the sender's root
    ("DOC-1", "1.2.250.1.999", master_identifier("1.2.250.1.999", "DOC-1")),  # <id root extension>
    ("2.1", "1.2.250.1.999", master_identifier("1.2.250.1.999", "2.1")),  # an extension that looks like an OID
    ("DOC-1", "CHEXEMPLE", None),  # no global id: the caller keeps its local identifier
    ("", "1.2.250.1.999", None),
])
def test_txa_12_gives_the_identity_of_the_cda_it_names(entity, universal, expected):
    assert from_entity_identifier(entity, universal) == expected


@pytest.mark.parametrize("stated", [
    {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{OID}"},
    {"value": f"urn:oid:{OID}"},
    {"value": OID},
    {"system": "urn:ietf:rfc:3986", "value": OID},
])
def test_other_accepted_forms_of_a_sender_become_the_one_form(stated):
    assert normalized(stated) == master_identifier(OID)


def test_xds_root_caret_extension_becomes_system_and_value():
    assert normalized({"value": "1.2.250.1.999^DOC-1"}) == master_identifier("1.2.250.1.999", "DOC-1")


def test_identifiers_that_name_no_oid_are_kept_as_stated():
    stated = {"system": "urn:oid:1.2.250.1.999", "value": "DOC-1", "use": "usual"}
    assert normalized(stated) == stated
    assert normalized({"value": "not-an-oid"}) == {"value": "not-an-oid"}
