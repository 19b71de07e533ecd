"""What the golden files mean: the mapping rules of the conversion, checked one by one."""

import base64
import hashlib
import re

import pytest
from tests.cda.conftest import FIXTURES
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from cda.convert import convert_cda
from cda.datatypes import timestamp

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def resources(conversion, resource_type):
    return [e["resource"] for e in conversion.bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def entry_of(conversion, resource_type):
    (entry,) = [e for e in conversion.bundle["entry"] if e["resource"]["resourceType"] == resource_type]
    return entry


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.xml")))
def test_every_produced_resource_is_valid_fhir_r4(name, fixture_bytes):
    conversion = convert_cda(fixture_bytes(name))
    Bundle.model_validate(conversion.bundle)
    for entry in conversion.bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        if "id" in resource:
            assert FHIR_ID.match(resource["id"])
            assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.xml")))
def test_each_binary_is_handed_over_as_the_bytes_of_its_data(name, fixture_bytes):
    """The server stores the Binaries from `contents`, not from `data`: they must agree."""
    conversion = convert_cda(fixture_bytes(name))
    binaries = {e["fullUrl"]: e["resource"] for e in conversion.bundle["entry"] if e["resource"]["resourceType"] == "Binary"}
    assert set(conversion.contents) == set(binaries)
    for full_url, resource in binaries.items():
        assert conversion.contents[full_url] == base64.b64decode(resource["data"])


def test_same_document_gives_the_same_bundle(fixture_bytes):
    data = fixture_bytes("ldl_ses_discharge_letter")
    assert convert_cda(data).bundle == convert_cda(data).bundle


def test_patient_is_found_or_created_by_ins_first(fixture_bytes):
    entry = entry_of(convert_cda(fixture_bytes("ldl_ses_discharge_letter")), "Patient")
    assert entry["request"]["ifNoneExist"] == "identifier=urn:oid:1.2.250.1.213.1.4.10|262077512345678"
    assert entry["fullUrl"].startswith("urn:uuid:")
    assert [i["system"] for i in entry["resource"]["identifier"]] == [
        "urn:oid:1.2.250.1.213.1.4.10", "urn:oid:1.2.250.1.999.1.1.1",
    ]
    assert entry["resource"]["birthDate"] == "1962-07-14"
    assert {n["use"]: n["family"] for n in entry["resource"]["name"]} == {
        "official": "FIXTURE-DUPONT", "usual": "FIXTURE-MOREAU",
    }


def test_patient_without_ins_is_found_by_local_ipp(fixture_bytes):
    entry = entry_of(convert_cda(fixture_bytes("cr_bio_lab_report")), "Patient")
    assert entry["request"]["ifNoneExist"] == "identifier=urn:oid:1.2.250.1.999.3.1.1|LAB-PAT-0099"


def test_document_reference_metadata(fixture_bytes):
    data = fixture_bytes("ldl_ses_discharge_letter")
    conversion = convert_cda(data)
    entry = entry_of(conversion, "DocumentReference")
    doc = entry["resource"]
    assert conversion.master_identifier == {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.1.1.2.2024.1"}
    assert entry["fullUrl"] == conversion.document_reference_fullurl
    assert entry["request"]["ifNoneExist"] == "identifier=urn:ietf:rfc:3986|urn:oid:1.2.250.1.999.1.1.2.2024.1"
    assert doc["date"] == "2024-11-18T16:30:00+01:00"
    assert doc["category"][0]["coding"][0]["code"] == "10"
    assert doc["content"][0]["format"]["code"] == "urn:asip:ci-sis:ldl-ses:2017"
    assert doc["securityLabel"][0]["coding"][0]["code"] == "N"
    assert doc["context"]["practiceSetting"]["coding"][0]["code"] == "ETABLISSEMENT"
    assert doc["context"]["facilityType"]["coding"][0]["code"] == "SA01"
    assert doc["subject"]["reference"] == entry_of(conversion, "Patient")["fullUrl"]
    assert doc["context"]["encounter"][0]["reference"] == entry_of(conversion, "Encounter")["fullUrl"]
    attachment = doc["content"][0]["attachment"]
    assert attachment["size"] == len(data)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    contained = {c["id"]: c for c in doc["contained"]}
    author = contained[doc["author"][0]["reference"][1:]]
    practitioner = contained[author["practitioner"]["reference"][1:]]
    assert practitioner["identifier"] == [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810100000017"}]
    custodian = contained[doc["custodian"]["reference"][1:]]
    assert custodian["identifier"] == [{"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1690000017"}]


def test_level1_pdf_is_the_rendering_of_the_one_content(fixture_bytes):
    data = fixture_bytes("level1_pdf")
    conversion = convert_cda(data)
    cda_binary, pdf_binary = resources(conversion, "Binary")
    assert base64.b64decode(cda_binary["data"]) == data
    assert cda_binary["contentType"] == "text/xml"
    pdf = base64.b64decode(pdf_binary["data"])
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    [content] = entry_of(conversion, "DocumentReference")["resource"]["content"]
    assert content["attachment"]["url"] == f"Binary/{cda_binary['id']}"
    assert content["format"]["code"] == "urn:ihe:iti:xds-sd:pdf:2008"
    [rendering] = content["extension"]
    assert rendering["url"] == "https://fhir-server.example.org/StructureDefinition/document-rendering"
    assert rendering["valueAttachment"]["url"] == f"Binary/{pdf_binary['id']}"
    assert rendering["valueAttachment"]["contentType"] == "application/pdf"
    assert rendering["valueAttachment"]["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()


def test_replacement_points_at_the_replaced_master_identifier(fixture_bytes):
    original = convert_cda(fixture_bytes("cr_bio_lab_report"))
    replacement = convert_cda(fixture_bytes("cr_bio_lab_report_rplc"))
    doc = entry_of(replacement, "DocumentReference")["resource"]
    assert doc["relatesTo"] == [{"code": "replaces", "target": {"identifier": original.master_identifier}}]
    assert replacement.master_identifier != original.master_identifier
    assert doc["securityLabel"][0]["coding"][0]["code"] == "R"


def test_prescription_lines_with_structured_and_free_text_dosage(fixture_bytes):
    conversion = convert_cda(fixture_bytes("ep_med_dm_prescription"))
    tapered, free_text = resources(conversion, "MedicationRequest")
    for request in (tapered, free_text):
        assert request["intent"] == "order"
        assert request["supportingInformation"] == [{"reference": conversion.document_reference_fullurl}]
        assert request["subject"]["reference"] == entry_of(conversion, "Patient")["fullUrl"]
        assert request["requester"]["identifier"]["value"] == "810100000025"
        assert request["dispenseRequest"]["validityPeriod"] == {
            "start": "2025-03-03T09:15:00+01:00", "end": "2025-06-03T09:15:00+01:00",
        }
        assert request["groupIdentifier"]["value"] == "0FIXTURE2025EPU01"
    assert tapered["medicationCodeableConcept"]["coding"][0]["code"] == "64795112"
    phases = tapered["dosageInstruction"]
    assert [p["sequence"] for p in phases] == [1, 2]
    assert [p["timing"]["repeat"]["boundsPeriod"] for p in phases] == [
        {"start": "2025-03-03", "end": "2025-03-10"}, {"start": "2025-03-10", "end": "2025-03-17"},
    ]
    assert [p["doseAndRate"][0]["doseQuantity"]["value"] for p in phases] == [2, 1]
    assert phases[0]["patientInstruction"] == "A prendre au cours du petit déjeuner"
    assert tapered["dispenseRequest"]["numberOfRepeatsAllowed"] == 1
    assert tapered["substitution"] == {
        "allowedCodeableConcept": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution",
            "code": "N", "display": "Aucune substitution permise",
        }]},
        "reason": {"text": "forme orodispersible indispensable (troubles de la déglutition)"},
    }
    assert free_text["medicationCodeableConcept"]["coding"][0]["code"] == "100000090270"
    assert free_text["dosageInstruction"] == [
        {"text": "1 g toutes les 6 heures si douleur ou fièvre, sans dépasser 4 g par jour"}
    ]
    assert free_text["dispenseRequest"]["quantity"]["value"] == 2
    assert tapered["id"] != free_text["id"]


def test_discharge_medications_are_planned_requests(fixture_bytes):
    conversion = convert_cda(fixture_bytes("ldl_ses_discharge_letter"))
    requests = resources(conversion, "MedicationRequest")
    assert [r["intent"] for r in requests] == ["plan", "plan", "plan"]
    assert requests[0]["dosageInstruction"][0]["timing"]["repeat"]["period"] == 12
    assert requests[1]["dosageInstruction"][0]["timing"]["repeat"]["when"] == ["ACM"]
    assert requests[1]["dosageInstruction"][0]["text"] == "500 mg à 1 g au début de chaque repas, sans dépasser 2 g par jour"
    assert "dispenseRequest" not in requests[0]


def test_unknown_template_leaves_the_format_empty_and_says_why(fixture_bytes):
    data = fixture_bytes("cr_bio_lab_report")
    data = data.replace(b"1.3.6.1.4.1.19376.1.3.3\"", b"1.2.3.4.5.6.7\"").replace(b"1.2.250.1.213.1.1.1.55\"", b"1.2.3.4.5.6.8\"")
    conversion = convert_cda(data)
    assert any("is in ASS_A11_CorresModeleCDA_XdsFormatCode_CISIS version" in w for w in conversion.warnings)
    assert "format" not in entry_of(conversion, "DocumentReference")["resource"]["content"][0]


def test_unknown_document_type_leaves_the_class_empty_and_says_why(fixture_bytes):
    data = fixture_bytes("cr_bio_lab_report").replace(b'code="11502-2"', b'code="99999-9"', 1)
    conversion = convert_cda(data)
    assert any("99999-9 (http://loinc.org) is not in ASS_X04_CorrespondanceType_Classe_CISIS" in w for w in conversion.warnings)
    assert "category" not in entry_of(conversion, "DocumentReference")["resource"]


def test_every_document_claims_pdsm_comprehensive(fixture_bytes):
    doc = entry_of(convert_cda(fixture_bytes("cr_bio_lab_report")), "DocumentReference")["resource"]
    assert doc["meta"]["profile"] == [
        "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"
    ]


@pytest.mark.parametrize(
    ("value", "expected", "warns"),
    [
        ("20241118163000+0100", "2024-11-18T16:30:00+01:00", False),
        ("202411181630-0500", "2024-11-18T16:30:00-05:00", False),
        ("20241118163000.250Z", "2024-11-18T16:30:00.250Z", False),
        ("20241118", "2024-11-18", False),
        ("202411", "2024-11", False),
        ("20241118163000", "2024-11-18", True),
        ("18/11/2024", None, True),
    ],
)
def test_cda_timestamps_become_fhir_datetimes(value, expected, warns):
    warnings: list[str] = []
    assert timestamp(value, warnings, "test") == expected
    assert bool(warnings) is warns


def test_document_time_without_zone_leaves_date_empty_with_a_warning(fixture_bytes):
    data = fixture_bytes("cr_bio_lab_report").replace(
        b'<effectiveTime value="20250110143000+0100"/>', b'<effectiveTime value="20250110143000"/>', 1
    )
    conversion = convert_cda(data)
    doc = entry_of(conversion, "DocumentReference")["resource"]
    assert "date" not in doc
    assert doc["content"][0]["attachment"]["creation"] == "2025-01-10"
    assert any("DocumentReference.date" in w for w in conversion.warnings)


def test_software_author_becomes_a_contained_device(fixture_bytes):
    data = re.sub(
        rb"(<author>.*?<assignedAuthor>.*?)<assignedPerson>.*?</assignedPerson>",
        rb"\1<assignedAuthoringDevice><softwareName>LabSoft 4.2</softwareName></assignedAuthoringDevice>",
        fixture_bytes("cr_bio_lab_report"),
        count=1,
        flags=re.S,
    )
    doc = entry_of(convert_cda(data), "DocumentReference")["resource"]
    contained = {c["id"]: c for c in doc["contained"]}
    device = contained[doc["author"][0]["reference"][1:]]
    assert device["resourceType"] == "Device"
    assert device["deviceName"] == [{"name": "LabSoft 4.2", "type": "model-name"}]
    get_fhir_model_class("DocumentReference").model_validate(doc)


def test_stay_without_an_encounter_class_creates_no_encounter(fixture_bytes):
    data = fixture_bytes("level1_pdf").replace(
        b'<code code="AMB" displayName="Consultation externe" codeSystem="2.16.840.1.113883.5.4"/>', b"", 1
    )
    conversion = convert_cda(data)
    assert resources(conversion, "Encounter") == []
    assert "encounter" not in entry_of(conversion, "DocumentReference")["resource"]["context"]
    assert any("no Encounter created" in w for w in conversion.warnings)


def test_source_patient_info_is_a_separate_contained_copy(fixture_bytes):
    conversion = convert_cda(fixture_bytes("ep_med_dm_prescription"))
    doc = entry_of(conversion, "DocumentReference")["resource"]
    contained = {c["id"]: c for c in doc["contained"]}
    source = contained[doc["context"]["sourcePatientInfo"]["reference"][1:]]
    patient = entry_of(conversion, "Patient")["resource"]
    assert source == {"id": source["id"], **patient}
    assert source["identifier"] is not patient["identifier"]


def test_hostile_values_are_dropped_not_crashed_on(fixture_bytes):
    data = (
        fixture_bytes("ep_med_dm_prescription")
        .replace(b'<low value="20250303"/><width value="7" unit="d"/>', b'<low value="20250303"/><width value="1e308" unit="d"/>')
        .replace(b'<doseQuantity value="2" unit="{tbl}"/>', b'<doseQuantity value="NaN" unit="{tbl}"/>')
        .replace(b'<sequenceNumber value="2"/>', b'<sequenceNumber value="99999999999"/>')
        .replace(b'<repeatNumber value="1"/>', b'<repeatNumber value="1.5"/>')
        .replace(b'<effectiveTime value="20250303091500+0100"/>', b'<effectiveTime value="20251303091500+0100"/>', 1)
    )
    conversion = convert_cda(data)
    Bundle.model_validate(conversion.bundle)
    for entry in conversion.bundle["entry"]:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    tapered = resources(conversion, "MedicationRequest")[0]
    first_phase, second_phase = tapered["dosageInstruction"]
    assert first_phase["timing"]["repeat"]["boundsDuration"]["value"] == 1e308
    assert "doseAndRate" not in first_phase
    assert "sequence" not in second_phase
    assert "numberOfRepeatsAllowed" not in tapered["dispenseRequest"]
    assert "date" not in entry_of(conversion, "DocumentReference")["resource"]
    assert any("impossible timestamp" in w for w in conversion.warnings)
