"""Each shipped profile accepts a resource built to conform to it."""

from __future__ import annotations

import pytest

from fhir_server.validation import validate_resource

MHD = "https://profiles.ihe.net/ITI/MHD/StructureDefinition"
PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition"
FRCORE = "https://hl7.fr/ig/fhir/core/StructureDefinition"
OURS = "https://fhir-server.example.org/StructureDefinition"

CONFORMING = {
    f"{MHD}/IHE.MHD.Minimal.DocumentReference": "DocumentReference-dmp-discharge-letter.json",
    f"{MHD}/IHE.MHD.UnContained.Comprehensive.DocumentReference": "DocumentReference-dmp-discharge-letter.json",
    f"{MHD}/IHE.MHD.Comprehensive.DocumentReference": "DocumentReference-dmp-discharge-letter.json",
    f"{PDSM}/pdsm-comprehensive-document-reference": "DocumentReference-dmp-discharge-letter.json",
    f"{OURS}/dmp-document-reference": "DocumentReference-dmp-discharge-letter.json",
    f"{PDSM}/PDSm-SimplifiedPublish": "DocumentReference-pdsm-simplified-publish.json",
    f"{MHD}/IHE.MHD.Minimal.SubmissionSet": "List-pdsm-submissionset.json",
    f"{MHD}/IHE.MHD.UnContained.Comprehensive.SubmissionSet": "List-pdsm-submissionset.json",
    f"{MHD}/IHE.MHD.Comprehensive.SubmissionSet": "List-pdsm-submissionset.json",
    f"{PDSM}/PDSmSubmissionSetComprehensive": "List-pdsm-submissionset.json",
    f"{MHD}/IHE.MHD.Minimal.Folder": "List-pdsm-folder.json",
    f"{MHD}/IHE.MHD.Comprehensive.Folder": "List-pdsm-folder.json",
    f"{PDSM}/PDSmFolderComprehensive": "List-pdsm-folder.json",
    f"{PDSM}/PDSmComprehensiveProvideDocumentBundle": "Bundle-pdsm-provide-document-bundle.json",
    f"{FRCORE}/fr-core-patient-ins": "Patient-fr-core-patient-ins.json",
    f"{OURS}/dmp-patient": "Patient-dmp-patient.json",
    f"{OURS}/advance-directive-document-reference": "DocumentReference-advance-directive.json",
    f"{OURS}/masked-document-reference": "DocumentReference-masked.json",
    f"{OURS}/visibility-label-system": "DocumentReference-masked.json",
}


@pytest.mark.parametrize(("profile_url", "file_name"), sorted(CONFORMING.items()))
def test_conforming_resource_has_no_issue(registry, fixture, profile_url, file_name):
    assert validate_resource(fixture(file_name), profile_url, registry) == []


def test_every_resource_profile_has_a_conforming_example(registry):
    shipped = {
        url
        for resource_type in ("DocumentReference", "List", "Bundle", "Patient")
        for url in registry.profiles_for_type(resource_type)
    }
    assert shipped == set(CONFORMING)


@pytest.mark.parametrize(
    "file_name",
    [
        "DocumentReference-dmp-discharge-letter.json",
        "DocumentReference-pdsm-simplified-publish.json",
        "List-pdsm-submissionset.json",
        "List-pdsm-folder.json",
        "Bundle-pdsm-provide-document-bundle.json",
        "Patient-fr-core-patient-ins.json",
        "Patient-dmp-patient.json",
    ],
)
def test_profiles_claimed_in_meta_are_checked_without_being_named(registry, fixture, file_name):
    resource = fixture(file_name)
    assert resource["meta"]["profile"]
    assert validate_resource(resource, None, registry) == []
