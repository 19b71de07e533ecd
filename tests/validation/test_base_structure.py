"""The base R4 check every write goes through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhir_server.validation import validate_resource
from fhir_server.validation.base_structure import check_base_structure

EXAMPLES_DIR = Path(__file__).parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
REQUIRED_TYPES = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Encounter", "DocumentReference", "Binary",
    "List", "Appointment", "Communication", "CommunicationRequest", "Consent", "AuditEvent", "MedicationRequest",
    "Provenance", "Bundle",
}


def test_examples_cover_every_stored_type():
    assert {json.loads(path.read_text())["resourceType"] for path in EXAMPLES} >= REQUIRED_TYPES


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_r4_example_is_accepted(registry, path):
    assert validate_resource(json.loads(path.read_text()), None, registry) == []


def _found(resource: dict, registry) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(i.severity, i.code, tuple(i.expression)) for i in check_base_structure(resource, registry)}


def test_wrong_datatype_points_at_the_element(registry):
    resource = json.loads((EXAMPLES_DIR / "documentreference-example.json").read_text())
    resource["content"][0]["attachment"]["contentType"] = 42
    assert _found(resource, registry) == {("error", "value", ("DocumentReference.content[0].attachment.contentType",))}


def test_unknown_element_is_a_structure_error(registry):
    resource = json.loads((EXAMPLES_DIR / "patient-example.json").read_text())
    resource["name"][0]["nickname"] = "Jim"
    assert _found(resource, registry) == {("error", "structure", ("Patient.name[0].nickname",))}


def test_missing_required_element(registry):
    assert _found({"resourceType": "DocumentReference", "content": [{"attachment": {}}]}, registry) == {
        ("error", "required", ("DocumentReference.status",))
    }


def test_bad_primitive_format(registry):
    resource = json.loads((EXAMPLES_DIR / "patient-example.json").read_text())
    resource["birthDate"] = "25/12/1974"
    assert _found(resource, registry) == {("error", "value", ("Patient.birthDate",))}


def test_error_inside_a_bundle_entry(registry):
    bundle = json.loads((EXAMPLES_DIR / "bundle-example.json").read_text())
    bundle["entry"][0]["resource"]["subject"] = "Patient/347"
    assert _found(bundle, registry) == {("error", "value", ("Bundle.entry[0].resource.subject",))}


@pytest.mark.parametrize("resource", [{"resourceType": "NotAResource"}, {"id": "x"}, ["Patient"]])
def test_not_a_known_resource(registry, resource):
    issues = check_base_structure(resource, registry)
    assert len(issues) == 1 and issues[0].severity == "error"


def test_validation_leaves_the_resource_untouched(registry):
    text = (EXAMPLES_DIR / "documentreference-example.json").read_text()
    resource = json.loads(text)
    validate_resource(resource, None, registry)
    assert resource == json.loads(text)
