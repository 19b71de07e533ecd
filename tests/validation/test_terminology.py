from __future__ import annotations

import pytest

NOS = "https://mos.esante.gouv.fr/NOS"
J07 = f"{NOS}/JDV_J07-XdsTypeCode-CISIS/FHIR/JDV-J07-XdsTypeCode-CISIS"
J06 = f"{NOS}/JDV_J06-XdsClassCode-CISIS/FHIR/JDV-J06-XdsClassCode-CISIS"
J10 = f"{NOS}/JDV_J10-XdsFormatCode-CISIS/FHIR/JDV-J10-XdsFormatCode-CISIS"
J08 = f"{NOS}/JDV_J08-XdsConfidentialityCode-CISIS/FHIR/JDV-J08-XdsConfidentialityCode-CISIS"
A06 = f"{NOS}/TRE_A06-FormatCodeComplementaire/FHIR/TRE-A06-FormatCodeComplementaire"
A07 = f"{NOS}/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
CONFIDENTIALITY = "https://fhir-server.example.org/ValueSet/dmp-document-confidentiality"
V3 = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


@pytest.mark.parametrize(
    ("value_set", "system", "code"),
    [
        (J07, "http://loinc.org", "11490-0"),  # discharge letter
        (J07, "http://loinc.org", "11502-2"),  # lab report
        (J07, "http://loinc.org", "57833-6"),  # prescription of health products
        (J07, "http://loinc.org", "18748-4"),  # imaging report
        (J07, "http://loinc.org", "87273-9"),  # vaccination note
        (J06, f"{NOS}/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument", "10"),
        (J10, f"{NOS}/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode", "urn:ihe:iti:xds-sd:pdf:2008"),
        (J10, A06, "urn:asip:ci-sis:vac-note:2021"),
        (J08, A07, "MASQUE_PS"),
        (J08, A07, "INVISIBLE_PATIENT"),
        (J08, A07, "INVISIBLE_REPRESENTANTS_LEGAUX"),
        (CONFIDENTIALITY, V3, "N"),  # through an included ValueSet
        (CONFIDENTIALITY, A07, "INVISIBLE_REPRESENTANTS_LEGAUX"),
    ],
)
def test_member(registry, value_set, system, code):
    assert registry.terminology.contains(value_set, system, code) is True


@pytest.mark.parametrize(
    ("value_set", "system", "code"),
    [
        (J07, "http://loinc.org", "00000-0"),
        (J07, "http://snomed.info/sct", "11490-0"),  # right code, wrong system
        (J08, A07, "MASQUE_PSOCIAL"),  # in TRE_A07 but not shipped in JDV_J08
        (CONFIDENTIALITY, V3, "X"),
    ],
)
def test_not_member(registry, value_set, system, code):
    assert registry.terminology.contains(value_set, system, code) is False


def test_unknown_value_set(registry):
    assert registry.terminology.contains("https://example.org/ValueSet/none", "http://loinc.org", "1-8") is None


def test_bare_code_is_matched_on_code(registry):
    assert registry.terminology.contains(J06, None, "10") is True
    assert registry.terminology.contains(J06, None, "77") is False
