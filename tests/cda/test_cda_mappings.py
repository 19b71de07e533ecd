"""The mapping tables of mappings/cda and the ANS correspondence tables of mappings/ans."""

import json

import pytest

from cda import correspondence
from cda.mappings import table
from fhir_server.config import PROJECT_ROOT


A06 = "https://mos.esante.gouv.fr/NOS/TRE_A06-FormatCodeComplementaire/FHIR/TRE-A06-FormatCodeComplementaire"
A11 = "https://mos.esante.gouv.fr/NOS/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode"
A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"


@pytest.mark.parametrize("path", sorted(correspondence.ANS_DIR.glob("ConceptMap-*.json")), ids=lambda p: p.stem)
def test_every_ans_table_names_its_version_and_where_it_was_published(path):
    concept_map = json.loads(path.read_text(encoding="utf-8"))
    assert concept_map["resourceType"] == "ConceptMap"
    assert concept_map["version"] and concept_map["url"] and concept_map["date"]
    assert concept_map["meta"]["source"].startswith("https://interop.esante.gouv.fr/terminologies/")
    assert all(group["element"] for group in concept_map["group"])


def test_every_class_of_ass_x04_is_a_code_of_tre_a03():
    classes = json.loads((PROJECT_ROOT / "profiles/CodeSystem/CodeSystem-TRE-A03-ClasseDocument.json").read_text())
    known = {concept["code"] for concept in classes["concept"]}
    targets = correspondence.type_to_class().targets.values()
    assert len(targets) > 130
    assert {t["code"] for t in targets if t["system"] == classes["url"]} <= known
    assert all(t.get("display") for t in targets if t["system"] == classes["url"])


@pytest.mark.parametrize(("system", "code", "expected"), [
    ("http://loinc.org", "55115-0", "42"), ("http://loinc.org", "96173-0", "52"), ("http://loinc.org", "74207-2", "11"),
    ("http://loinc.org", "75496-0", "10"), ("http://loinc.org", "51969-4", "10"), ("http://loinc.org", "34794-8", "10"),
    (A05, "CERT_DECL", "52"), (A05, "REMB", "60"), (A05, "SYNTH", "11"),
])
def test_document_types_the_issue_found_without_class_have_one(system, code, expected):
    assert correspondence.document_class([{"system": system, "code": code}])["code"] == expected


@pytest.mark.parametrize(("family", "template", "expected"), [
    ("BIO-TROD", "1.2.250.1.213.1.1.1.59", (A06, "urn:ans:ci-sis:trod:2024")),
    ("SDM-MR", "1.2.250.1.213.1.1.1.30", (A06, "urn:asip:ci-sis:sdm-mr:2017")),
    ("TLM-DA", "1.2.250.1.213.1.1.1.38", (A06, "urn:asip:ci-sis:tlm-da:2020")),
    ("CANCER-CR-GM", "1.2.250.1.213.1.1.1.32", (A06, "urn:asip:ci-sis:crgm:2018")),
    ("CANCER-FRCP", "1.2.250.1.213.1.1.1.8", (A06, "urn:asip:ci-sis:frcp:2011")),
    ("CNAM-HR", "1.2.250.1.213.1.1.1.36", (A06, "urn:asip:ci-sis:hr:2019")),
    ("CSE-CS8", "1.2.250.1.213.1.1.1.5.1", (A06, "urn:asip:ci-sis:cse-cs8:2017")),
    ("CSE-CS9", "1.2.250.1.213.1.1.1.5.2", (A06, "urn:asip:ci-sis:cse-cs9:2017")),
    ("CSE-CS24", "1.2.250.1.213.1.1.1.5.3", (A06, "urn:asip:ci-sis:cse-cs24:2017")),
    ("AVC-AUNV", "1.2.250.1.213.1.1.1.15", (A06, "urn:asip:ci-sis:aunv:2013")),
    ("AVC-PAVC", "1.2.250.1.213.1.1.1.25", (A06, "urn:asip:ci-sis:pavc:2016")),
    ("CARD-F-PRC-AVK", "1.2.250.1.213.1.1.1.2.1.1", (A06, "urn:asip:ci-sis:avk:2009")),
    ("DLU-EHPAD-FLUDT", "1.2.250.1.213.1.1.1.23", (A06, "urn:asip:ci-sis:fludt:2017")),
    ("OBP-SAP", "1.2.250.1.213.1.1.1.12.1", (A06, "urn:asip:ci-sis:obp-sap:2023")),
    ("BIO-CR-BIO", "1.2.250.1.213.1.1.1.55", (A11, "urn:ihe:lab:xd-lab:2008")),
])
def test_cda_models_the_issue_found_without_format_have_one(family, template, expected):
    found = correspondence.model_format(["2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1", template])
    assert (found["system"], found["code"]) == expected


def test_the_supplement_never_overrides_the_published_table():
    official = correspondence._load(correspondence.A11).targets
    merged = correspondence.model_to_format().targets
    assert all(merged[key] == value for key, value in official.items())


def test_level1_formats_follow_the_media_type_of_the_body():
    assert correspondence.body_format("application/pdf")["code"] == "urn:ihe:iti:xds-sd:pdf:2008"
    assert correspondence.body_format("application/zip") is None


def test_medication_section_rules_use_fhir_codes():
    rules = table("medication_sections")["sections"].values()
    assert {rule["intent"] for rule in rules} <= {"proposal", "plan", "order", "original-order"}
    assert {rule["status"] for rule in rules} <= {"active", "completed", "unknown"}


def test_gender_and_timing_targets_are_fhir_codes():
    assert set(table("administrative_gender").values()) <= {"male", "female", "other", "unknown"}
    assert set(table("timing_units").values()) <= {"s", "min", "h", "d", "wk", "mo", "a"}


def test_documentation_keys_are_not_data():
    assert all(not key.startswith("_") for key in table("code_systems"))
