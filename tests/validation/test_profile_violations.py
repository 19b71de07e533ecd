"""Non-conforming resources fail with the expression path and issue code a developer can act on."""

from __future__ import annotations

from fhir_server.validation import ValidationIssue, validate_resource

PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition"
OURS = "https://fhir-server.example.org/StructureDefinition"
FRCORE = "https://hl7.fr/ig/fhir/core/StructureDefinition"
DOCREF = "DocumentReference-dmp-discharge-letter.json"


def _found(issues: list[ValidationIssue]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(i.severity, i.code, tuple(i.expression)) for i in issues}


def test_missing_required_element(registry, fixture):
    resource = fixture(DOCREF)
    del resource["custodian"]
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "required", ("DocumentReference.custodian",))}


def test_missing_required_element_inside_repetition(registry, fixture):
    resource = fixture(DOCREF)
    del resource["content"][0]["attachment"]["hash"]
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "required", ("DocumentReference.content[0].attachment.hash",))}


def test_required_element_of_mhd_ancestor_is_inherited(registry, fixture):
    resource = fixture(DOCREF)
    del resource["context"]["practiceSetting"]
    issues = validate_resource(resource, f"{PDSM}/pdsm-comprehensive-document-reference", registry)
    assert ("error", "required", ("DocumentReference.context.practiceSetting",)) in _found(issues)


def test_prohibited_element(registry, fixture):
    resource = fixture("DocumentReference-pdsm-simplified-publish.json")
    resource["content"][0]["attachment"]["url"] = "Binary/1"
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "structure", ("DocumentReference.content[0].attachment.url",))}


def test_wrong_fixed_value(registry, fixture):
    resource = fixture("DocumentReference-pdsm-simplified-publish.json")
    resource["status"] = "superseded"
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "value", ("DocumentReference.status",))}
    # The profile's value, not the instance's: a patch may have put stored content there.
    assert '"current"' in issues[0].diagnostics and "superseded" not in issues[0].diagnostics


def test_wrong_pattern_value(registry, fixture):
    resource = fixture("List-pdsm-folder.json")
    resource["code"]["coding"][0]["code"] = "submissionset"
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "value", ("List.code",))}


def test_fixed_value_in_a_datatype_profile(registry, fixture):
    resource = fixture(DOCREF)
    resource["masterIdentifier"]["use"] = "official"
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "value", ("DocumentReference.masterIdentifier.use",))}


def test_missing_ins_slice(registry, fixture):
    resource = fixture("Patient-dmp-patient.json")
    resource["identifier"] = [i for i in resource["identifier"] if i["system"] != "urn:oid:1.2.250.1.213.1.4.10"]
    issues = validate_resource(resource, f"{OURS}/dmp-patient", registry)
    assert _found(issues) == {("error", "invariant", ("Patient",))}
    # dmp-patient-1: an INS-NIR is required; fr-core-1/2: a validated identity carries one official INS.
    assert sorted(i.diagnostics.split(":")[0] for i in issues) == ["dmp-patient-1", "fr-core-1", "fr-core-2"]


def test_ins_slice_with_wrong_use(registry, fixture):
    resource = fixture("Patient-fr-core-patient-ins.json")
    resource["identifier"][0]["use"] = "usual"
    issues = validate_resource(resource, None, registry)
    assert ("error", "value", ("Patient.identifier[0].use",)) in _found(issues)


def test_ins_slice_without_value(registry, fixture):
    resource = fixture("Patient-fr-core-patient-ins.json")
    del resource["identifier"][0]["value"]
    issues = validate_resource(resource, None, registry)
    assert ("error", "required", ("Patient.identifier[0].value",)) in _found(issues)


def test_too_many_ins_slice_items(registry, fixture):
    resource = fixture("Patient-dmp-patient.json")
    second = dict(resource["identifier"][0], use="old", value="248039263001065")
    resource["identifier"].append(second)
    issues = validate_resource(resource, None, registry)
    assert ("error", "structure", ("Patient.identifier[3]",)) in _found(issues)


def test_identifier_slice_absent_when_profile_requires_one(registry, fixture):
    resource = fixture("Patient-fr-core-patient-ins.json")
    resource["identifier"] = []
    del resource["extension"]
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "required", ("Patient.identifier",))}


def test_code_not_in_required_value_set(registry, fixture):
    resource = fixture(DOCREF)
    resource["category"][0]["coding"][0]["code"] = "77"
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "code-invalid", ("DocumentReference.category[0]",))}
    assert "JDV_J06" in issues[0].diagnostics and "77" not in issues[0].diagnostics


def test_code_not_in_required_value_set_of_a_slice(registry, fixture):
    resource = fixture(DOCREF)
    resource["securityLabel"][0]["coding"][0]["code"] = "Z"
    issues = validate_resource(resource, None, registry)
    found = _found(issues)
    # Without a valid confidentiality code the mandatory slice is empty, and the code is unknown.
    assert ("error", "required", ("DocumentReference.securityLabel",)) in found
    assert ("warning", "code-invalid", ("DocumentReference.securityLabel[0]",)) in found


def test_code_not_in_extensible_value_set_is_a_warning(registry, fixture):
    resource = fixture(DOCREF)
    resource["type"]["coding"][0]["code"] = "00000-0"
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("warning", "code-invalid", ("DocumentReference.type",))}


def test_dmp_visibility_codes_are_accepted(registry, fixture):
    resource = fixture(DOCREF)
    system = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
    # MASQUE_PS with INVISIBLE_PATIENT is refused on its own account (masked-document-reference).
    for codes in (("MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX"), ("INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")):
        resource["securityLabel"][1:] = [{"coding": [{"system": system, "code": code}]} for code in codes]
        assert validate_resource(resource, None, registry) == []


def test_masked_and_invisible_to_the_patient_is_refused(registry, fixture):
    resource = fixture(DOCREF)
    system = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
    resource["securityLabel"][1:] = [{"coding": [{"system": system, "code": code}]} for code in ("INVISIBLE_PATIENT", "MASQUE_PS")]
    [issue] = validate_resource(resource, None, registry)
    assert (issue.severity, issue.code) == ("error", "invariant")
    assert issue.diagnostics.startswith("masked-document-1: ")


def test_visibility_label_under_the_oid_is_refused(registry, fixture):
    """Under its OID, TRE_A07 is not the system the access rules read: the label would hide nothing."""
    resource = fixture(DOCREF)
    resource["securityLabel"][1:] = [{"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.13", "code": "MASQUE_PS"}]}]
    del resource["meta"]
    [issue] = validate_resource(resource, None, registry)
    assert (issue.severity, issue.code) == ("error", "invariant")
    assert issue.diagnostics.startswith("visibility-label-1: ")


def test_failed_invariant(registry, fixture):
    resource = fixture(DOCREF)
    resource["context"]["period"] = {"start": "2026-07-02T08:00:00+02:00", "end": "2026-07-01T08:00:00+02:00"}
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "invariant", ("DocumentReference",))}
    assert issues[0].diagnostics.startswith("dmp-docref-2")


def test_failed_invariant_on_an_element(registry, fixture):
    resource = fixture(DOCREF)
    resource["identifier"][0]["value"] = "9b0cbd5e-7a2f-4c57-9a34-4b5f1c0f1a11"
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "invariant", ("DocumentReference.identifier[0].value",))}


def test_fr_core_invariant_on_validated_identity(registry, fixture):
    resource = fixture("Patient-fr-core-patient-ins.json")
    resource["identifier"].append(
        {"use": "official", "system": "urn:oid:1.2.250.1.213.1.4.8", "value": "248039263001064"}
    )
    issues = validate_resource(resource, None, registry)
    assert ("error", "invariant", ("Patient",)) in _found(issues)
    assert any(i.diagnostics.startswith("fr-core-2") for i in issues)


def test_missing_extension_by_url(registry, fixture):
    resource = fixture("List-pdsm-submissionset.json")
    resource["extension"] = [e for e in resource["extension"] if not e["url"].endswith("ihe-sourceId")]
    issues = validate_resource(resource, None, registry)
    found = _found(issues)
    assert ("error", "required", ("List.extension",)) in found
    assert any("extension:sourceId" in i.diagnostics for i in issues)


def test_extension_content_checked_against_its_definition(registry, fixture):
    resource = fixture(DOCREF)
    resource["extension"][0] = {"url": resource["extension"][0]["url"]}
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("error", "required", ("DocumentReference.extension[0].value[x]",))}


def test_bundle_invariants_and_entries(registry, fixture):
    bundle = fixture("Bundle-pdsm-provide-document-bundle.json")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "List"]
    del bundle["entry"][0]["resource"]["custodian"]
    issues = validate_resource(bundle, None, registry)
    assert _found(issues) == {
        ("error", "invariant", ("Bundle",)),
        ("error", "required", ("Bundle.entry[0].resource.custodian",)),
    }


def test_bundle_with_patient_entry(registry, fixture):
    bundle = fixture("Bundle-pdsm-provide-document-bundle.json")
    bundle["entry"].append(
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
    )
    issues = validate_resource(bundle, None, registry)
    assert any(i.diagnostics.startswith("pdsm-bundle-3") for i in issues)


def test_unknown_profile_in_meta_is_a_warning(registry, fixture):
    resource = fixture(DOCREF)
    resource["meta"]["profile"].append("https://example.org/StructureDefinition/unknown")
    issues = validate_resource(resource, None, registry)
    assert _found(issues) == {("warning", "not-found", ("DocumentReference.meta.profile[1]",))}


def test_unknown_requested_profile_is_an_error(registry, fixture):
    issues = validate_resource(fixture(DOCREF), "https://example.org/StructureDefinition/unknown", registry)
    assert _found(issues) == {("error", "not-found", ())}


def test_profile_of_another_type(registry, fixture):
    issues = validate_resource(fixture("Patient-dmp-patient.json"), f"{OURS}/dmp-document-reference", registry)
    assert _found(issues) == {("error", "structure", ("Patient",))}


def test_versioned_profile_url(registry, fixture):
    resource = fixture(DOCREF)
    del resource["custodian"]
    issues = validate_resource(resource, f"{PDSM}/pdsm-comprehensive-document-reference|3.1.0", registry)
    assert ("error", "required", ("DocumentReference.custodian",)) in _found(issues)
