from __future__ import annotations

import json

import pytest

from fhir_server.validation import ProfileRegistry

PDSM_DOCREF = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"


def test_structure_definition_by_url_with_or_without_version(registry):
    assert registry.get_structure_definition(PDSM_DOCREF)["type"] == "DocumentReference"
    versioned = registry.get_structure_definition(f"{PDSM_DOCREF}|3.1.0")
    assert versioned is registry.get_structure_definition(PDSM_DOCREF)
    assert registry.get_structure_definition("https://example.org/none") is None


def test_profiles_for_type(registry):
    assert PDSM_DOCREF in registry.profiles_for_type("DocumentReference")
    fr_core_ins = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"
    assert fr_core_ins in registry.profiles_for_type("Patient")
    # An extension definition constrains Extension, not a resource type.
    assert registry.profiles_for_type("Extension") == []
    assert "http://hl7.org/fhir/StructureDefinition/bodyweight" in registry.profiles_for_type("Observation")
    assert registry.profiles_for_type("Appointment") == []


def test_all_canonical_urls_cover_every_kind(registry):
    urls = registry.all_canonical_urls()
    assert PDSM_DOCREF in urls
    assert "https://mos.esante.gouv.fr/NOS/JDV_J07-XdsTypeCode-CISIS/FHIR/JDV-J07-XdsTypeCode-CISIS" in urls
    assert "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument" in urls


def test_profile_inherits_ancestor_constraints(registry):
    rules = registry.element_rules(PDSM_DOCREF)
    assert rules["DocumentReference.masterIdentifier"].min == 1  # from IHE MHD Minimal
    assert rules["DocumentReference.custodian"].min == 1  # from PDSm itself


def test_every_binding_and_base_resolves(registry):
    """Every ValueSet our profiles bind with a checked strength is shipped, and every parent of a
    shipped profile is either shipped or a base R4 definition."""
    for url in registry.all_canonical_urls():
        definition = registry.get_structure_definition(url)
        if definition is None:
            continue
        base = definition["baseDefinition"]
        # The two parents we do not ship: FR Core Patient (its INS child carries the constraints
        # we enforce) and the IHE Provide Bundle (its entry rules are PDSm invariants here).
        known_gaps = ("/fr-core-patient", "/IHE.MHD.Comprehensive.ProvideBundle")
        assert (
            base.startswith("http://hl7.org/fhir/StructureDefinition/")
            or registry.get_structure_definition(base) is not None
            or base.endswith(known_gaps)
        ), base
        for element in definition["differential"]["element"]:
            binding = element.get("binding", {})
            if binding.get("strength") in ("required", "extensible"):
                assert registry.get_value_set(binding["valueSet"]) is not None, binding["valueSet"]


def test_load_rejects_duplicate_urls(tmp_path):
    folder = tmp_path / "ValueSet"
    folder.mkdir()
    for name in ("a", "b"):
        resource = {"resourceType": "ValueSet", "url": "https://example.org/vs"}
        (folder / f"ValueSet-{name}.json").write_text(json.dumps(resource))
    with pytest.raises(ValueError, match="repeats"):
        ProfileRegistry.load(tmp_path)


def test_load_rejects_misfiled_resources(tmp_path):
    folder = tmp_path / "CodeSystem"
    folder.mkdir()
    misfiled = {"resourceType": "ValueSet", "url": "https://example.org/vs"}
    (folder / "CodeSystem-x.json").write_text(json.dumps(misfiled))
    with pytest.raises(ValueError, match="expected CodeSystem"):
        ProfileRegistry.load(tmp_path)


def test_load_rejects_a_code_rule_naming_an_unknown_profile(tmp_path):
    rule = {"resourceType": "Observation", "element": "code", "system": "http://loinc.org", "code": "29463-7",
            "profile": "http://example.org/StructureDefinition/missing"}
    (tmp_path / "code-profiles.json").write_text(json.dumps({"rules": [rule]}))
    with pytest.raises(ValueError, match="missing"):
        ProfileRegistry.load(tmp_path)
