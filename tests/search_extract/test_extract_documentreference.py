"""The index of a French document-sharing (PDSm) DocumentReference, parameter by parameter."""

import pytest

from tests.search_extract.conftest import load_fixture
from fhir_server.search.extract import extract_index


@pytest.fixture(scope="module")
def index(registry):
    return extract_index(load_fixture("DocumentReference-cr.json"), registry)


def test_patient_and_subject_are_single_strings_without_version(index):
    ix, sk = index
    assert ix["patient"] == "Patient/pat-1"
    assert ix["subject"] == "Patient/pat-1"
    assert ix["custodian"] == "Organization/org-dmp"
    assert sk["patient"] == "Patient/pat-1"


def test_repeating_references_are_lists_and_keep_absolute_urls(index):
    ix, _ = index
    assert ix["author"] == ["PractitionerRole/pr-1", "https://annuaire.example.org/fhir/Organization/org-7"]
    assert ix["author:identifier"] == [
        "urn:oid:1.2.250.1.71.4.2.1|810002909371", "*|810002909371", "urn:oid:1.2.250.1.71.4.2.1|*",
    ]
    assert ix["related"] == ["ServiceRequest/sr-1", "urn:uuid:2f1d0a7e-3c44-4b7a-8a8e-0d1b7e2c9f10"]


def test_encounter_keeps_encounters_and_episodes_of_care(index):
    # R4 clinical-encounter: `DocumentReference.context.encounter`, targets Encounter and EpisodeOfCare.
    ix, _ = index
    assert ix["encounter"] == ["Encounter/enc-1", "EpisodeOfCare/eoc-1"]


def test_relatesto_by_reference_and_by_identifier(index):
    ix, _ = index
    assert ix["relatesto"] == ["DocumentReference/cr-bio-0"]
    assert "urn:ietf:rfc:3986|urn:oid:1.2.250.1.999.2.3.1" in ix["relatesto:identifier"]
    assert ix["relation"] == ["|replaces", "*|replaces", "|appends", "*|appends"]


def test_identifier_covers_master_identifier_and_identifiers(index):
    ix, sk = index
    assert ix["identifier"][:3] == [
        "urn:ietf:rfc:3986|urn:oid:1.2.250.1.999.2.3.4", "*|urn:oid:1.2.250.1.999.2.3.4", "urn:ietf:rfc:3986|*",
    ]
    assert "urn:ietf:rfc:3986|urn:uuid:4e2c5a3e-5f0b-4a0e-9e51-6f7d2c1b0a99" in ix["identifier"]
    # Each encoded form is stored once even when two identifiers share a system.
    assert ix["identifier"].count("urn:ietf:rfc:3986|*") == 1
    assert ix["identifier:of-type"] == [
        "http://terminology.hl7.org/CodeSystem/v2-0203|FILL|urn:uuid:4e2c5a3e-5f0b-4a0e-9e51-6f7d2c1b0a99",
    ]
    assert ix["identifier:text"] == ["identifiant de la fiche"]
    assert sk["identifier"] == "urn:oid:1.2.250.1.999.2.3.4"


def test_coded_metadata(index):
    ix, sk = index
    assert ix["type"] == ["http://loinc.org|11502-2", "*|11502-2", "http://loinc.org|*"]
    assert ix["type:text"] == ["cr d'examens biologiques"]
    assert sk["type"] == "11502-2"
    assert "urn:oid:1.2.250.1.213.1.1.4.1|10" in ix["category"]
    assert "urn:oid:1.2.250.1.71.4.2.4|SA07" in ix["facility"]
    assert "urn:oid:1.2.250.1.213.1.1.4.9|ORG-24" in ix["setting"]
    assert ix["setting:text"] == ["biologie medicale"]
    assert "urn:oid:2.16.840.1.113883.6.3|E11" in ix["event"]
    assert ix["event:text"] == ["diabete de type 2"]
    assert "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode|urn:ihe:iti:xds-sd:pdf:2008" in ix["format"]
    assert "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N" in ix["security-label"]


def test_plain_codes_have_no_system(index):
    ix, sk = index
    assert ix["status"] == ["|current", "*|current"]
    assert ix["contenttype"] == ["|application/pdf", "*|application/pdf"]
    assert ix["language"] == ["|fr-FR", "*|fr-FR"]
    assert sk["status"] == "current"


def test_pdsm_is_archived_extension(index):
    ix, _ = index
    assert ix["isArchived"] == ["*|false"]


def test_dates_are_utc_ranges_at_their_precision(index):
    ix, sk = index
    assert ix["date"] == [{"l": "2024-03-05T08:10:00.000000Z", "h": "2024-03-05T08:10:00.999999Z"}]
    assert ix["creation"] == [{"l": "2024-03-04T00:00:00.000000Z", "h": "2024-03-04T23:59:59.999999Z"}]
    assert ix["period"] == [{"l": "2024-03-01T00:00:00.000000Z", "h": "2024-03-04T18:00:00.999999Z"}]
    assert sk["date"] == "2024-03-05T08:10:00.000000Z"


def test_strings(index):
    ix, sk = index
    assert ix["description"] == ["resultats d'analyses sanguines"]
    assert ix["description:exact"] == ["Résultats   d'analyses  Sanguines"]
    assert sk["description"] == "resultats d'analyses sanguines"


def test_uri(index):
    ix, _ = index
    assert ix["location"] == ["Binary/bin-1"]


def test_meta_parameters(index):
    ix, sk = index
    assert ix["_tag"] == ["urn:example:tags|import", "*|import", "urn:example:tags|*"]
    assert ix["_tag:text"] == ["importe"]
    assert "http://terminology.hl7.org/CodeSystem/v3-ActReason|HTEST" in ix["_security"]
    assert ix["_profile"] == [
        "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/PDSm_ComprehensiveDocumentReference",
    ]
    assert ix["_source"] == ["urn:oid:1.2.250.1.999.1"]


def test_id_and_last_updated_are_left_to_the_storage(index):
    ix, sk = index
    for code in ("_id", "_lastUpdated"):
        assert code not in ix
        assert code not in sk


def test_parameters_without_values_are_omitted(index):
    ix, _ = index
    for key in ix:
        assert ix[key] not in ([], None, "")
    # Companion keys exist only when there is something to put in them.
    assert "authenticator:identifier" not in ix
    assert "status:text" not in ix
