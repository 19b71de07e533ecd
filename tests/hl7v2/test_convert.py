"""What the maps must get right, checked on the meaning rather than the whole bundle."""

import base64
import importlib

import pytest

from cda import convert_cda
from fhir_server.ingest.hl7v2.convert import convert_message
from fhir_server.ingest.hl7v2.errors import Hl7Error
from tests.hl7v2.conftest import FIXTURES, fixture


def resources(name: str, resource_type: str) -> list[dict]:
    bundle = convert_message(fixture(name)).bundle
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def entry_of(name: str, resource_type: str) -> dict:
    bundle = convert_message(fixture(name)).bundle
    return next(e for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type)


def replace_segment(message: bytes, prefix: bytes, replacement: bytes) -> bytes:
    segments = message.split(b"\r")
    return b"\r".join(replacement if s.startswith(prefix) else s for s in segments)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.hl7") if not p.name.startswith("malformed")))
def test_every_produced_resource_is_valid_r4(name):
    for entry in convert_message(fixture(name)).bundle["entry"]:
        resource = entry["resource"]
        module = importlib.import_module(f"fhir.resources.R4B.{resource['resourceType'].lower()}")
        getattr(module, resource["resourceType"]).model_validate(resource)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.hl7") if not p.name.startswith("malformed")))
def test_the_bytes_handed_over_with_each_binary_are_its_data(name):
    """The server stores a carried document from `contents`, not from `data`: they must agree."""
    conversion = convert_message(fixture(name))
    binaries = {e["fullUrl"]: e["resource"] for e in conversion.bundle["entry"] if e["resource"]["resourceType"] == "Binary"}
    assert set(conversion.contents) <= set(binaries)
    for full_url, resource in binaries.items():
        if "data" in resource and full_url in conversion.contents:
            assert conversion.contents[full_url] == base64.b64decode(resource["data"])
    if name == "mdm_t02.hl7":
        assert len(conversion.contents) == 1


def test_mdm_document_carries_the_cda_and_its_security_labels():
    document = resources("mdm_t02.hl7", "DocumentReference")[0]
    assert document["masterIdentifier"] == {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.1.1.7.20240301"}
    assert document["status"] == "current"
    codes = {c["code"] for label in document["securityLabel"] for c in label["coding"]}
    # Y flags become labels, N flags (MASQUE_PS) and routing flags (DESTDMP) do not; N comes from the CDA.
    assert codes == {"INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "N"}
    binary = resources("mdm_t02.hl7", "Binary")[0]
    assert base64.b64decode(binary["data"]) == (FIXTURES / "cda_imaging_report.xml").read_bytes()
    assert document["content"][0]["attachment"]["url"] == f"Binary/{binary['id']}"


def test_cda_fills_what_the_message_leaves_out_and_the_message_wins_elsewhere():
    document = resources("mdm_t02.hl7", "DocumentReference")[0]
    assert document["content"][0]["attachment"]["title"] == "Radiographie du thorax"  # only in the CDA
    assert document["date"] == "2024-03-01T10:15:00+01:00"  # TXA-4, not the CDA effectiveTime
    assert document["category"][0]["coding"][0]["code"] == "31"  # only in the CDA
    # Custodian and author come from the CDA (PRT 'SB' is who sent it, not who wrote it).
    assert document["custodian"] == {"reference": "#org1"}
    assert document["author"] == [{"reference": "#role1"}]
    contained = {c["id"]: c["resourceType"] for c in document["contained"]}
    assert (contained["org1"], contained["role1"]) == ("Organization", "PractitionerRole")


def test_without_cda_the_sender_is_the_author():
    message = fixture("mdm_t02_unknown_patient.hl7") + (
        b"PRT||UC||SB^^participation|810000000009^ENVOYEUR^MARC^^^^^^RPPS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS\r"
    )
    bundle = convert_message(message).bundle
    [sender] = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Practitioner"]
    [document] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert document["author"] == [{"reference": sender["fullUrl"]}]


def test_originator_wins_over_the_cda_author_whose_contained_resources_are_then_dropped():
    message = fixture("mdm_t02.hl7").replace(
        b"TXA|1|18748-4|TEXT|20240301101500|||||",
        b"TXA|1|18748-4|TEXT|20240301101500|||||810000000007^AUTEUR^LUC^^^^^^RPPS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS",
    )
    bundle = convert_message(message).bundle
    originator = next(e for e in bundle["entry"] if e["resource"].get("identifier", [{}])[0].get("value") == "810000000007")
    [document] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert document["author"] == [{"reference": originator["fullUrl"]}]
    # FHIR forbids unreferenced contained resources: the CDA author's practitioner and role go.
    assert {c["resourceType"] for c in document["contained"]} == {"Patient", "Organization"}
    # The CDA's own Patient and DocumentReference are not written twice.
    assert len(resources("mdm_t02.hl7", "Patient")) == 1
    assert len(resources("mdm_t02.hl7", "DocumentReference")) == 1


def test_a_cda_about_another_patient_is_refused():
    message = fixture("mdm_t02.hl7").replace(b"PID|||180017512345678^", b"PID|||299999999999999^")
    with pytest.raises(Hl7Error) as raised:
        convert_message(message)
    assert (raised.value.ack_code, raised.value.code, raised.value.location) == ("AE", "204", "PID^1^3")
    assert "another patient" in raised.value.message


def entry_of_document(name):
    (entry,) = [e for e in convert_message(fixture(name)).bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    return entry


def test_replacement_relates_to_the_replaced_document_by_its_identifier():
    replacement = entry_of_document("mdm_t10_replacement.hl7")
    assert replacement["resource"]["relatesTo"] == [{
        "code": "replaces",
        "target": {"identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.1.1.7.20240301"}},
    }]
    assert replacement["request"]["url"] != entry_of_document("mdm_t02.hl7")["request"]["url"]


def test_a_document_is_written_by_its_identity_the_one_every_channel_computes():
    original = entry_of_document("mdm_t02.hl7")
    assert original["resource"]["masterIdentifier"] == {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.1.1.7.20240301"}
    assert original["request"] == {
        "method": "PUT", "url": "DocumentReference?identifier=urn:ietf:rfc:3986|urn%3Aoid%3A1.2.250.1.999.1.1.7.20240301",
    }
    cda = (FIXTURES / "cda_imaging_report.xml").read_bytes()
    assert original["resource"]["masterIdentifier"] == convert_cda(cda).master_identifier


@pytest.mark.parametrize("txa12", [
    b"1.2.250.1.999.1.1.7.20240301^CHEXEMPLE",  # the whole id, as the ANS examples send it
    b"1.2.250.1.999.1.1.7.20240301^^1.2.250.1.999.1.1.7^ISO",  # the whole id under the sender's root
])
def test_every_way_of_stating_the_cda_id_in_txa_12_gives_the_same_identity(txa12):
    message = fixture("mdm_t02.hl7").replace(b"1.2.250.1.999.1.1.7.20240301^CHEXEMPLE", txa12)
    (document,) = [e["resource"] for e in convert_message(message).bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert document["masterIdentifier"] == {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.1.1.7.20240301"}


def test_txa_12_naming_another_document_than_the_carried_cda_is_refused():
    message = fixture("mdm_t02.hl7").replace(b"1.2.250.1.999.1.1.7.20240301^CHEXEMPLE", b"1.2.250.1.999.1.1.7.99^CHEXEMPLE")
    with pytest.raises(Hl7Error) as raised:
        convert_message(message)
    assert (raised.value.ack_code, raised.value.code, raised.value.location) == ("AE", "204", "TXA^1^12")
    assert "ClinicalDocument/id" in raised.value.message


def test_cancellation_marks_the_same_document_entered_in_error():
    cancelled = entry_of_document("mdm_t04_cancellation.hl7")
    replacement = entry_of_document("mdm_t10_replacement.hl7")
    assert cancelled["resource"]["status"] == "entered-in-error"
    assert cancelled["request"] == replacement["request"]


def test_patient_identity_prefers_the_ins_then_the_local_identifier():
    patient_entry = entry_of("mdm_t02.hl7", "Patient")
    assert patient_entry["request"] == {
        "method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:oid:1.2.250.1.213.1.4.10|180017512345678",
    }
    local = entry_of("adt_a28.hl7", "Patient")
    assert local["request"] == {"method": "PUT", "url": "Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP0099"}


def test_unknown_patient_is_created_by_conditional_create():
    entry = entry_of("mdm_t02_unknown_patient.hl7", "Patient")
    assert entry["request"]["method"] == "POST"
    assert entry["request"]["ifNoneExist"] == "identifier=urn:oid:1.2.250.1.999.2.1.1|IPP5555"
    document = resources("mdm_t02_unknown_patient.hl7", "DocumentReference")[0]
    assert document["subject"] == {"reference": entry["fullUrl"]}


@pytest.mark.parametrize("encoded", [b"JVBERi0xLjQKQUJD", b"JVBERi0xLjQKQUI", b"JVBERi0x\\.br\\LjQKQUI="])
def test_base64_documents_are_read_tolerantly(encoded):
    message = replace_segment(
        fixture("mdm_t02_unknown_patient.hl7"), b"OBX|", b"OBX|1|ED|11488-4^Note^LN||^AP^PDF^Base64^" + encoded + b"||||||F"
    )
    binary = next(e["resource"] for e in convert_message(message).bundle["entry"] if e["resource"]["resourceType"] == "Binary")
    assert binary["contentType"] == "application/pdf"
    assert base64.b64decode(binary["data"]).startswith(b"%PDF-1.4\nAB")


def test_undecodable_base64_is_refused_with_its_location():
    message = replace_segment(
        fixture("mdm_t02_unknown_patient.hl7"), b"OBX|", b"OBX|1|ED|11488-4^Note^LN||^AP^PDF^Base64^JVBERi0xL||||||F"
    )
    with pytest.raises(Hl7Error) as raised:
        convert_message(message)
    assert (raised.value.ack_code, raised.value.code, raised.value.location) == ("AE", "102", "OBX^1^5")


def test_text_document_decodes_charset_and_escapes():
    binary = resources("mdm_t02_text_latin1.hl7", "Binary")[0]
    text = base64.b64decode(binary["data"]).decode("utf-8")
    assert text.splitlines() == [
        "Compte rendu de sortie : patiente & famille informées.",
        "Traitement|dose : 1 cp^jour",
        "Suite OK \\ fin",
        "Signé : Dr Éric BÉRANGER",
    ]
    patient = resources("mdm_t02_text_latin1.hl7", "Patient")[0]
    assert patient["name"][0] == {"use": "official", "family": "LEFÈVRE", "given": ["HÉLÈNE"]}


def test_oru_numeric_results_become_observations_and_the_report_a_document():
    observations = resources("oru_r01.hl7", "Observation")
    assert [o["code"]["coding"][0]["code"] for o in observations] == ["2823-3", "2951-2", "1988-5"]
    sodium, crp = observations[1:]
    assert crp["valueQuantity"] == {"value": 5, "comparator": "<", "unit": "mg/L", "system": "http://unitsofmeasure.org", "code": "mg/L"}
    assert sodium["valueQuantity"] == {"value": 149, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
    assert sodium["interpretation"][0]["coding"][0]["code"] == "H"
    assert sodium["referenceRange"] == [{"text": "135-145"}]
    document = resources("oru_r01.hl7", "DocumentReference")[0]
    assert document["masterIdentifier"]["value"] == "urn:oid:1.2.250.1.999.1.1.7.20240301"
    assert document["securityLabel"][0]["coding"][0]["code"] == "MASQUE_PS"


def test_prescription_orders_share_one_group_and_one_prescriber():
    requests = resources("rde_o11.hl7", "MedicationRequest")
    assert len(requests) == 2
    assert {r["groupIdentifier"]["value"] for r in requests} == {"PRESC-1"}
    assert len({r["requester"]["reference"] for r in requests}) == 1
    assert len(resources("rde_o11.hl7", "Practitioner")) == 1
    first = requests[0]
    assert first["dosageInstruction"][0]["route"]["coding"][0]["code"] == "PO"
    assert first["dispenseRequest"]["numberOfRepeatsAllowed"] == 2
    omp = resources("omp_o09.hl7", "MedicationRequest")[0]
    assert omp["medicationCodeableConcept"]["coding"][0]["code"] == "3400930000000"


@pytest.mark.parametrize(("name", "status"), [
    ("siu_s12.hl7", "booked"), ("siu_s13.hl7", "booked"), ("siu_s14.hl7", "booked"),
    ("siu_s15.hl7", "cancelled"), ("siu_s16.hl7", "cancelled"), ("siu_s17.hl7", "entered-in-error"),
    ("siu_s26.hl7", "noshow"),
])
def test_appointment_status_follows_the_event(name, status):
    assert resources(name, "Appointment")[0]["status"] == status


def test_reschedule_updates_the_same_appointment():
    booked = resources("siu_s12.hl7", "Appointment")[0]
    moved = resources("siu_s13.hl7", "Appointment")[0]
    assert booked["id"] == moved["id"]
    assert (booked["start"], moved["start"]) == ("2024-03-15T14:00:00+01:00", "2024-03-16T09:00:00+01:00")


def test_discharge_finishes_the_encounter_admitted_earlier():
    admitted = resources("adt_a01.hl7", "Encounter")[0]
    discharged = resources("adt_a03.hl7", "Encounter")[0]
    assert admitted["id"] == discharged["id"]
    assert (admitted["status"], discharged["status"]) == ("in-progress", "finished")
    assert discharged["period"]["end"] == "2024-03-05T16:00:00+01:00"


def test_merge_links_both_patients():
    survivor, merged = (e for e in convert_message(fixture("adt_a40.hl7")).bundle["entry"])
    assert survivor["resource"]["link"] == [{"other": {"reference": merged["fullUrl"]}, "type": "replaces"}]
    assert merged["resource"]["link"] == [{"other": {"reference": survivor["fullUrl"]}, "type": "replaced-by"}]
    assert merged["resource"]["active"] is False
    assert merged["request"]["url"] == "Patient?identifier=urn:oid:1.2.250.1.999.1.1.1|IPP0099"


def test_replay_converts_to_the_same_bundle():
    assert convert_message(fixture("rde_o11.hl7")).bundle == convert_message(fixture("rde_o11.hl7")).bundle


@pytest.mark.parametrize(("message", "ack", "code", "location"), [
    (b"garbage without header", "AR", "100", "MSH^1^1"),
    (fixture("adt_a01.hl7").replace(b"ADT^A01^ADT_A01", b"ADT^A99^ADT_A01"), "AR", "201", "MSH^1^9"),
    (fixture("adt_a01.hl7").replace(b"ADT^A01^ADT_A01", b"QRY^Q01^QRY_Q01"), "AR", "200", "MSH^1^9"),
    (fixture("adt_a01.hl7").replace(b"|ADT-A01|", b"||"), "AR", "101", "MSH^1^10"),
    (replace_segment(fixture("mdm_t02.hl7"), b"TXA|", b"TXA|1|18748-4|TEXT|20240301101500"), "AE", "101", "TXA^1^12"),
    (replace_segment(fixture("adt_a01.hl7"), b"PID|", b"PID|||12345^^^^PI||X^Y"), "AE", "101", "PID^1^3"),
    (replace_segment(fixture("mdm_t02_unknown_patient.hl7"), b"OBX|", b"OBX|1|NM|1-1^x^LN||5"), "AE", "101", "OBX^1^5"),
])
def test_refusals_carry_ack_code_error_code_and_location(message, ack, code, location):
    with pytest.raises(Hl7Error) as raised:
        convert_message(message)
    assert (raised.value.ack_code, raised.value.code, raised.value.location) == (ack, code, location)
    assert raised.value.message
