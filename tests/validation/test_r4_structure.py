"""The R4 structure check on what the R4B models could not say: R4-only types, R4 primitives,
required codes, choice elements and primitive extensions."""

from __future__ import annotations

import pytest

from fhir_server.config import PROJECT_ROOT
from fhir_server.validation.base_structure import check_base_structure
from fhir_server.validation.profile_registry import ProfileRegistry

REGISTRY = ProfileRegistry.load(PROJECT_ROOT / "profiles")


def _found(resource: dict) -> set[tuple[str, str]]:
    return {(i.code, i.expression[0] if i.expression else "") for i in check_base_structure(resource, REGISTRY)}


def test_r4_types_the_r4b_models_lack_are_checked() -> None:
    product = {"resourceType": "MedicinalProduct", "name": [{"productName": "Paracétamol 500 mg"}]}
    assert _found(product) == set()
    assert _found({"resourceType": "MedicinalProduct"}) == {("required", "MedicinalProduct.name")}
    assert _found({"resourceType": "SubstanceSpecification", "code": [{"code": "x"}]}) == {
        ("value", "SubstanceSpecification.code[0].code")}


def test_required_codes_are_those_of_the_bound_value_set() -> None:
    subscription = {"resourceType": "Subscription", "status": "off", "reason": "r", "criteria": "Observation?",
                    "channel": {"type": "rest-hook", "endpoint": "https://example.org/hook"}}
    assert _found(subscription) == set()
    assert _found({**subscription, "status": "paused"}) == {("code-invalid", "Subscription.status")}
    observation = {"resourceType": "Observation", "status": "not-a-status", "code": {"text": "x"}}
    assert _found(observation) == {("code-invalid", "Observation.status")}


@pytest.mark.parametrize(("value", "valid"), [
    ("aGVs bG8g d29y bGQ=", True),  # whitespace between groups of four
    ("aGVs\nbG8g\r\nd29ybGQ=", True),
    ("aGV sbG8=", False),  # whitespace inside a group
    ("aGVsbG8", False),  # not a multiple of four
    ("", False),
])
def test_base64_binary_allows_whitespace_between_groups(value: str, valid: bool) -> None:
    resource = {"resourceType": "DocumentReference", "status": "current",
                "content": [{"attachment": {"contentType": "text/plain", "data": value}}]}
    assert (_found(resource) == set()) is valid


@pytest.mark.parametrize(("element", "value", "code"), [
    ("birthDate", "1974-12-25", None),
    ("birthDate", "1974-13-25", "value"),
    ("birthDate", 19741225, "value"),
    ("active", "true", "value"),
    ("multipleBirthInteger", 2, None),
    ("multipleBirthInteger", 2**31, "value"),
    ("multipleBirthInteger", 2.0, "value"),
    ("gender", "female", None),
    ("gender", "feminine", "code-invalid"),
])
def test_primitive_values(element: str, value: object, code: str | None) -> None:
    found = _found({"resourceType": "Patient", element: value})
    assert found == (set() if code is None else {(code, f"Patient.{element}")})


def test_strings_hold_no_control_characters() -> None:
    assert _found({"resourceType": "Patient", "name": [{"text": "tab\tand\nnewline"}]}) == set()
    assert _found({"resourceType": "Patient", "name": [{"text": "nul\x00"}]}) == {("value", "Patient.name[0].text")}


def test_choice_elements_take_one_type() -> None:
    assert _found({"resourceType": "Patient", "deceasedDateTime": "2020-01-01"}) == set()
    both = _found({"resourceType": "Patient", "deceasedBoolean": True, "deceasedDateTime": "2020-01-01"})
    assert ("structure", "Patient.deceasedDateTime") in both
    assert _found({"resourceType": "Patient", "deceasedString": "yes"}) == {("structure", "Patient.deceasedString")}


def test_cardinality_and_arrays() -> None:
    assert _found({"resourceType": "Patient", "name": {"family": "X"}}) == {("structure", "Patient.name")}
    assert _found({"resourceType": "Patient", "gender": ["male"]}) == {("structure", "Patient.gender")}


def test_primitive_extensions_line_up_with_their_values() -> None:
    extension = {"url": "http://example.org/e", "valueString": "x"}
    aligned = {"resourceType": "Patient", "name": [{"given": ["A", None], "_given": [None, {"extension": [extension]}]}]}
    assert _found(aligned) == set()
    only_extension = {"resourceType": "Patient", "_birthDate": {"extension": [extension]}}
    assert _found(only_extension) == set()
    misaligned = {"resourceType": "Patient", "name": [{"given": ["A"], "_given": [None, {"id": "x"}]}]}
    assert _found(misaligned) == {("structure", "Patient.name[0]._given")}
    assert _found({"resourceType": "Patient", "_name": {"id": "x"}}) == {("structure", "Patient._name")}


def test_contained_and_entry_resources_are_checked_as_their_own_type() -> None:
    contained = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                 "contained": [{"resourceType": "Patient", "id": "p", "gender": "other-gender"}]}
    assert _found(contained) == {("code-invalid", "Observation.contained[0].gender")}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Nope"}}]}
    assert _found(bundle) == {("value", "Bundle.entry[0].resource")}


def test_backbone_and_recursive_elements() -> None:
    questionnaire = {"resourceType": "Questionnaire", "status": "draft",
                     "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string"}]}]}
    assert _found(questionnaire) == set()
    questionnaire["item"][0]["item"][0]["colour"] = "blue"
    assert _found(questionnaire) == {("structure", "Questionnaire.item[0].item[0].colour")}
