"""Loading the shipped SearchParameter bundles (R4's own, then the guides') into the registry."""

import json

import pytest

from tests.search_extract.conftest import PROFILES
from fhir_server.search.fhirpath_walker import compile_expression, expression_for_base
from fhir_server.search.parameters import parameter_files

TYPES = [
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Encounter", "DocumentReference", "Binary",
    "List", "Appointment", "Communication", "CommunicationRequest", "Consent", "AuditEvent",
    "MedicationRequest", "Provenance", "Bundle", "Observation",
]

REQUIRED = {
    "DocumentReference": [
        "patient", "subject", "identifier", "status", "type", "category", "date", "period", "creation",
        "facility", "setting", "event", "format", "security-label", "relatesto", "relation", "author",
        "custodian", "contenttype", "location", "encounter", "related", "description", "language", "isArchived",
    ],
    "Appointment": [
        "patient", "actor", "date", "status", "identifier", "service-type", "practitioner", "location",
        "appointment-type", "specialty",
    ],
    "Communication": [
        "subject", "patient", "recipient", "sender", "sent", "received", "category", "status", "part-of",
        "identifier", "encounter", "based-on",
    ],
    "Consent": [
        "patient", "status", "category", "scope", "action", "actor", "period", "data", "date", "identifier",
        "purpose", "security-label", "source-reference",
    ],
    "List": [
        "code", "subject", "patient", "status", "identifier", "date", "source", "item", "title",
        "designationType", "sourceId", "isArchived",
    ],
    "Patient": [
        "identifier", "family", "given", "name", "birthdate", "gender", "address", "address-city",
        "address-postalcode", "telecom", "active", "link", "general-practitioner", "organization", "phonetic",
        "deceased",
    ],
}
COMMON = ["_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"]


def test_sources_are_collection_bundles_of_search_parameters():
    for path in parameter_files(PROFILES):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "collection"
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert resource["resourceType"] == "SearchParameter"
            assert entry["fullUrl"] == resource["url"]


def test_r4_parameters_are_the_specifications_own():
    bundle = json.loads(parameter_files(PROFILES)[0].read_text(encoding="utf-8"))
    assert bundle["meta"]["source"] == "npm:hl7.fhir.r4.examples@4.0.1"
    resources = [entry["resource"] for entry in bundle["entry"]]
    # search-parameters.json of FHIR R4 4.0.1: 1375 definitions, none experimental.
    assert len(resources) == 1375
    assert all(r["version"] == "4.0.1" and r["experimental"] is False for r in resources)


@pytest.mark.parametrize("resource_type", sorted(REQUIRED))
def test_required_parameters_are_registered(registry, resource_type):
    codes = {param.code for param in registry.for_type(resource_type)}
    missing = set(REQUIRED[resource_type]) - codes
    assert not missing


def test_common_parameters_apply_to_every_type(registry):
    for resource_type in TYPES + ["Condition"]:
        codes = [param.code for param in registry.for_type(resource_type)]
        for code in COMMON:
            assert code in codes
        assert len(codes) == len(set(codes))


def test_get_finds_type_specific_then_common(registry):
    patient = registry.get("DocumentReference", "patient")
    assert patient.type == "reference"
    assert patient.url == "http://hl7.org/fhir/SearchParameter/clinical-patient"
    assert patient.expression == "DocumentReference.subject.where(resolve() is Patient)"
    assert patient.targets == ("Patient", "Group")
    assert registry.get("DocumentReference", "_tag").base == "Resource"
    assert registry.get("DocumentReference", "no-such-param") is None
    assert registry.get("Binary", "patient") is None


def test_standard_and_guide_definitions_are_the_published_ones(registry):
    creation = registry.get("DocumentReference", "creation")
    assert creation.url == "https://profiles.ihe.net/ITI/MHD/SearchParameter/DocumentReference-Creation"
    assert creation.type == "date"
    assert creation.expression == "DocumentReference.content.attachment.creation"
    archived_doc = registry.get("DocumentReference", "isArchived")
    archived_list = registry.get("List", "isArchived")
    assert archived_doc.url == archived_list.url == (
        "https://interop.esante.gouv.fr/ig/fhir/pdsm/SearchParameter/PDSm-isArchived"
    )
    assert archived_doc.type == "token"
    assert registry.get("List", "designationType").url == (
        "https://profiles.ihe.net/ITI/MHD/SearchParameter/List-DesignationType"
    )
    assert registry.get("Patient", "family").url == "http://hl7.org/fhir/SearchParameter/individual-family"


def test_all_resources_gives_each_url_once_with_all_its_bases(registry):
    resources = registry.all_resources()
    urls = [resource["url"] for resource in resources]
    assert len(urls) == len(set(urls))
    by_url = {resource["url"]: resource for resource in resources}
    family = by_url["http://hl7.org/fhir/SearchParameter/individual-family"]
    assert set(family["base"]) == {"Patient", "Practitioner"}
    assert "Patient.name.family" in family["expression"]
    assert "Practitioner.name.family" in family["expression"]
    clinical_patient = by_url["http://hl7.org/fhir/SearchParameter/clinical-patient"]
    assert {"DocumentReference", "List", "Encounter", "Consent"} <= set(clinical_patient["base"])
    # The registry hands out copies: the CapabilityStatement builder may not alter the definitions.
    family["base"].append("Group")
    again = {r["url"]: r for r in registry.all_resources()}
    assert "Group" not in again["http://hl7.org/fhir/SearchParameter/individual-family"]["base"]


@pytest.mark.parametrize(
    ("resource_type", "code"),
    [
        ("DocumentReference", "patient"), ("DocumentReference", "subject"), ("DocumentReference", "status"),
        ("DocumentReference", "type"), ("DocumentReference", "date"), ("DocumentReference", "custodian"),
        ("DocumentReference", "period"), ("DocumentReference", "facility"), ("Patient", "birthdate"),
        ("Patient", "gender"), ("Patient", "organization"), ("Patient", "death-date"), ("Consent", "patient"),
        ("Communication", "sender"), ("Observation", "date"), ("Observation", "value-concept"),
        ("MedicationRequest", "code"), ("MedicationRequest", "medication"), ("List", "subject"),
        ("Resource", "_source"), ("Bundle", "timestamp"),
    ],
)
def test_single_valued_parameters(registry, resource_type, code):
    assert registry.get(resource_type, code).single is True


@pytest.mark.parametrize(
    ("resource_type", "code"),
    [
        ("DocumentReference", "author"), ("DocumentReference", "identifier"), ("DocumentReference", "encounter"),
        ("DocumentReference", "category"), ("DocumentReference", "relatesto"), ("DocumentReference", "creation"),
        ("DocumentReference", "isArchived"), ("Patient", "family"), ("Patient", "name"), ("Patient", "deceased"),
        ("Appointment", "patient"), ("Communication", "recipient"), ("Consent", "actor"), ("AuditEvent", "patient"),
        ("List", "item"), ("Observation", "value-quantity"), ("Resource", "_tag"), ("Bundle", "composition"),
    ],
)
def test_multi_valued_or_unknown_parameters_are_not_single(registry, resource_type, code):
    assert registry.get(resource_type, code).single is False


def test_every_shipped_expression_compiles(registry):
    fallbacks = []
    for resource in registry.all_resources():
        if "expression" not in resource:
            # R4's `_text`, `_content` and `_query` have none: the server refuses them (400).
            assert resource["code"] in ("_text", "_content", "_query")
            continue
        for base in resource["base"]:
            expression = expression_for_base(resource["expression"], base)
            assert expression, (resource["url"], base)
            compiled = compile_expression(expression, base)
            assert callable(compiled.evaluate)
            # An empty resource has no values (`deceased` is computed: false when absent); a
            # composite's expression may select the resource itself (`code-value-quantity`).
            values = compiled.evaluate({"resourceType": base})
            assert all(value is False for _, value in values) or resource["type"] == "composite"
            if not compiled.fast:
                fallbacks.append(f"{base}.{resource['code']}")
    # Only expressions beyond simple paths (boolean logic, indexers) go to fhirpathpy.
    assert sorted(fallbacks) == ["Bundle.composition", "Bundle.message", "Patient.deceased"]


def test_expression_for_base_keeps_the_branches_of_that_base():
    shared = "Patient.name.family | Practitioner.name.family | (RelatedPerson.name as HumanName).family"
    assert expression_for_base(shared, "Practitioner") == "Practitioner.name.family"
    untyped = "(extension('http://example.org/a|b').value as Boolean)"
    assert expression_for_base(untyped, "List") == untyped
    assert expression_for_base(shared, "Group") == ""


def test_duplicate_code_for_one_type_is_refused(tmp_path):
    from fhir_server.search.parameters import SearchParameterRegistry

    definition = {
        "resourceType": "SearchParameter", "url": "http://example.org/sp", "code": "status",
        "base": ["Patient"], "type": "token", "expression": "Patient.active",
    }
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": definition}] * 2}
    (tmp_path / "Patient.json").write_text(json.dumps(bundle))
    with pytest.raises(ValueError):
        SearchParameterRegistry.load([tmp_path / "Patient.json"])
