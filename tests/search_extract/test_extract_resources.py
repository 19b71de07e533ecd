"""Index extraction for the other resource types the server stores."""

from tests.search_extract.conftest import load_fixture
from fhir_server.search.extract import extract_index


def test_patient(registry):
    ix, sk = extract_index(load_fixture("Patient-ins.json"), registry)
    assert "urn:oid:1.2.250.1.213.1.4.8|277076322082910" in ix["identifier"]
    assert ix["identifier:of-type"] == [
        "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203|INS-NIR|277076322082910",
    ]
    assert ix["family"] == ["lefevre-hote", "dupont"]
    assert ix["family:exact"] == ["Lefèvre-Hôte", "Dupont"]
    assert ix["given"] == ["elodie", "marie"]
    assert ix["name"] == ["lefevre-hote", "elodie", "marie", "mme", "dupont", "elodie dupont"]
    assert sk["family"] == "lefevre-hote"
    assert ix["address"] == ["12 rue de l'eglise", "batiment b", "saint-etienne", "42000", "fra"]
    assert ix["address-city"] == ["saint-etienne"]
    assert ix["address-postalcode"] == ["42000"]
    assert ix["birthdate"] == [{"l": "1977-07-28T00:00:00.000000Z", "h": "1977-07-28T23:59:59.999999Z"}]
    assert ix["death-date"] == [{"l": "2024-01-15T07:30:00.000000Z", "h": "2024-01-15T07:30:00.999999Z"}]
    assert ix["deceased"] == ["*|true"]
    assert ix["gender"] == ["|female", "*|female"]
    assert ix["active"] == ["*|true"]
    assert ix["telecom"] == ["|+33 6 12 34 56 78", "*|+33 6 12 34 56 78", "|elodie.dupont@example.fr",
                             "*|elodie.dupont@example.fr"]
    assert ix["phone"] == ["|+33 6 12 34 56 78", "*|+33 6 12 34 56 78"]
    assert ix["email"] == ["|elodie.dupont@example.fr", "*|elodie.dupont@example.fr"]
    assert ix["general-practitioner"] == ["Practitioner/prac-1"]
    assert ix["organization"] == "Organization/org-7"
    assert ix["link"] == ["Patient/pat-0"]
    assert "urn:ietf:bcp:47|fr" in ix["language"]
    # meta.profile is a canonical: searchable with and without its version.
    assert ix["_profile"] == [
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins",
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins|2.1.0",
    ]


def test_patient_deceased_computed_by_fhirpath(registry):
    ix, _ = extract_index(load_fixture("Patient-deceased-boolean.json"), registry)
    assert ix["deceased"] == ["*|true"]
    assert ix["birthdate"] == [{"l": "1950-01-01T00:00:00.000000Z", "h": "1950-12-31T23:59:59.999999Z"}]
    alive, _ = extract_index({"resourceType": "Patient", "id": "p"}, registry)
    assert alive["deceased"] == ["*|false"]


def test_practitioner(registry):
    ix, _ = extract_index(load_fixture("Practitioner-rpps.json"), registry)
    assert ix["family"] == ["muller"]
    assert ix["given"] == ["jean-francois"]
    assert ix["identifier:of-type"] == ["http://interopsante.org/fhir/CodeSystem/fr-v2-0203|IDNPS|810002909371"]
    assert ix["email"] == ["|jf.muller@example.fr", "*|jf.muller@example.fr"]
    assert "phone" not in ix


def test_appointment(registry):
    ix, sk = extract_index(load_fixture("Appointment-consult.json"), registry)
    assert ix["actor"] == ["Patient/pat-1", "Practitioner/prac-1", "Location/loc-1"]
    # participant repeats: each of these may hold several references, so they stay lists.
    assert ix["patient"] == ["Patient/pat-1"]
    assert ix["practitioner"] == ["Practitioner/prac-1"]
    assert ix["location"] == ["Location/loc-1"]
    assert ix["date"] == [{"l": "2024-04-02T12:30:00.000000Z", "h": "2024-04-02T12:30:00.999999Z"}]
    assert ix["status"] == ["|booked", "*|booked"]
    assert "http://terminology.hl7.org/CodeSystem/service-type|124" in ix["service-type"]
    assert ix["specialty:text"] == ["medecine generale (sm)"]
    assert "http://terminology.hl7.org/CodeSystem/v2-0276|ROUTINE" in ix["appointment-type"]
    assert ix["part-status"] == ["|accepted", "*|accepted"]
    assert "urn:oid:1.2.250.1.999.5|RDV-2024-001" in ix["identifier"]
    assert sk["date"] == "2024-04-02T12:30:00.000000Z"


def test_communication(registry):
    ix, _ = extract_index(load_fixture("Communication-message.json"), registry)
    assert ix["subject"] == "Patient/pat-1"
    assert ix["patient"] == "Patient/pat-1"
    assert ix["recipient"] == ["Patient/pat-1", "PractitionerRole/pr-1"]
    assert ix["sender"] == "Practitioner/prac-1"
    assert ix["encounter"] == "Encounter/enc-1"
    assert ix["part-of"] == ["Communication/com-0"]
    assert ix["based-on"] == ["CommunicationRequest/creq-1"]
    assert ix["sent"] == [{"l": "2024-04-03T10:00:00.000000Z", "h": "2024-04-03T10:00:00.999999Z"}]
    assert ix["received"] == [{"l": "2024-04-03T10:00:02.500000Z", "h": "2024-04-03T10:00:02.599999Z"}]
    assert "http://terminology.hl7.org/CodeSystem/communication-category|notification" in ix["category"]
    assert ix["status"] == ["|completed", "*|completed"]
    assert ix["instantiates-canonical"] == [
        "http://example.org/fhir/PlanDefinition/suivi", "http://example.org/fhir/PlanDefinition/suivi|2.0",
    ]


def test_consent(registry):
    ix, _ = extract_index(load_fixture("Consent-dmp.json"), registry)
    assert ix["patient"] == "Patient/pat-1"
    assert ix["status"] == ["|active", "*|active"]
    assert "http://terminology.hl7.org/CodeSystem/consentscope|patient-privacy" in ix["scope"]
    assert "http://loinc.org|59284-0" in ix["category"]
    assert "http://terminology.hl7.org/CodeSystem/consentaction|access" in ix["action"]
    assert ix["actor"] == ["Practitioner/prac-2"]
    assert ix["data"] == ["DocumentReference/cr-bio-1"]
    assert ix["period"] == [{"l": "2024-02-01T00:00:00.000000Z", "h": "9999-12-31T23:59:59.999999Z"}]
    assert ix["date"] == [{"l": "2024-02-01T11:00:00.000000Z", "h": "2024-02-01T11:00:00.999999Z"}]
    assert "http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT" in ix["purpose"]
    assert "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R" in ix["security-label"]
    assert ix["source-reference"] == "DocumentReference/cr-bio-1"
    assert ix["organization"] == ["Organization/org-dmp"]


def test_list_submission_set_with_ihe_and_pdsm_extensions(registry):
    ix, _ = extract_index(load_fixture("List-submissionset.json"), registry)
    assert ix["designationType"] == ["http://loinc.org|11488-4", "*|11488-4", "http://loinc.org|*"]
    assert ix["designationType:text"] == ["consultation note"]
    assert ix["sourceId"] == ["|urn:oid:1.2.250.1.999.8", "*|urn:oid:1.2.250.1.999.8"]
    assert ix["isArchived"] == ["*|true"]
    assert "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes|submissionset" in ix["code"]
    assert ix["patient"] == "Patient/pat-1"
    assert ix["source"] == "PractitionerRole/pr-1"
    assert ix["item"] == ["DocumentReference/cr-bio-1", "DocumentReference/cr-bio-2"]
    assert ix["title"] == ["lot de soumission — cardiologie"]
    assert ix["status"] == ["|current", "*|current"]


def test_observation_components_and_choice_values(registry):
    ix, sk = extract_index(load_fixture("Observation-bp.json"), registry)
    assert ix["date"] == [{"l": "2024-03-05T07:00:00.000000Z", "h": "9999-12-31T23:59:59.999999Z"}]
    assert ix["component-value-quantity"] == [
        {"v": 128.0, "s": "http://unitsofmeasure.org", "c": "mm[Hg]", "u": "mmHg"},
        {"v": 81.5, "s": "http://unitsofmeasure.org", "c": "mm[Hg]", "u": "mmHg"},
    ]
    assert ix["combo-value-quantity"] == ix["component-value-quantity"]
    assert "value-quantity" not in ix
    assert "http://loinc.org|8480-6" in ix["combo-code"]
    assert "http://loinc.org|85354-9" in ix["combo-code"]
    assert sk["component-value-quantity"] == 81.5

    ix, _ = extract_index(load_fixture("Observation-weight.json"), registry)
    assert ix["value-quantity"] == [{"v": 62.4, "s": "http://unitsofmeasure.org", "c": "kg", "u": "kg"}]
    assert ix["date"] == [{"l": "2024-03-05T00:00:00.000000Z", "h": "2024-03-05T23:59:59.999999Z"}]
    assert ix["code:text"] == ["poids"]
    assert "value-string" not in ix


def test_medication_request_timing_and_choice(registry):
    ix, sk = extract_index(load_fixture("MedicationRequest-timing.json"), registry)
    assert ix["date"] == [
        {"l": "2024-03-06T07:00:00.000000Z", "h": "2024-03-06T07:00:00.999999Z"},
        {"l": "2024-03-06T19:00:00.000000Z", "h": "2024-03-06T19:00:00.999999Z"},
        {"l": "2024-03-07T00:00:00.000000Z", "h": "2024-03-07T23:59:59.999999Z"},
    ]
    assert sk["date"] == "2024-03-06T07:00:00.000000Z"
    assert "urn:oid:1.2.250.1.213.2.3.1|3400930000001" in ix["code"]
    assert ix["code:text"] == ["paracetamol 500 mg"]
    assert "medication" not in ix
    assert ix["patient"] == "Patient/pat-1"
    assert ix["requester"] == "Practitioner/prac-1"


def test_encounter(registry):
    ix, _ = extract_index(load_fixture("Encounter-stay.json"), registry)
    assert ix["class"] == [
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", "*|IMP", "http://terminology.hl7.org/CodeSystem/v3-ActCode|*",
    ]
    assert ix["date"] == [{"l": "2024-02-28T09:00:00.000000Z", "h": "2024-03-04T23:59:59.999999Z"}]
    assert ix["length"] == [{"v": 5.0, "s": "http://unitsofmeasure.org", "c": "d", "u": "days"}]
    assert ix["participant"] == ["Practitioner/prac-1", "PractitionerRole/pr-1"]
    assert ix["practitioner"] == ["Practitioner/prac-1"]
    assert ix["patient"] == "Patient/pat-1"
    assert ix["service-provider"] == "Organization/org-7"


def test_references_resolved_against_contained_resources(registry):
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "contained": [{"resourceType": "Patient", "id": "p1"}],
        "subject": {"reference": "#p1"},
        "content": [{"attachment": {"url": "Binary/1"}}],
    }
    ix, _ = extract_index(document, registry)
    assert ix["patient"] == "#p1"
    document["contained"][0]["resourceType"] = "Group"
    ix, _ = extract_index(document, registry)
    assert "patient" not in ix
    assert ix["subject"] == "#p1"


def test_typed_reference_without_literal_type(registry):
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": "urn:uuid:0b8f4c52-6b3d-4a8e-9d7e-1b2c3d4e5f60", "type": "Patient"},
        "content": [{"attachment": {"url": "Binary/1"}}],
    }
    ix, _ = extract_index(document, registry)
    assert ix["patient"] == "urn:uuid:0b8f4c52-6b3d-4a8e-9d7e-1b2c3d4e5f60"
