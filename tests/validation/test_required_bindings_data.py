"""The base R4 required bindings shipped in profiles/r4 are usable: every bound element is an R4
element, and every ValueSet is shipped with its codes."""

from __future__ import annotations

import json

from fhir_server.definitions.elements import child
from fhir_server.validation.base_structure import check_base_structure
from tests.validation.conftest import PROFILES_DIR

TABLE = json.loads((PROFILES_DIR / "r4" / "required-bindings.json").read_text())


def test_every_bound_element_is_an_r4_element_of_a_coded_type():
    for path in TABLE["bindings"]:
        parent, _, name = path.rpartition(".")
        element = child(parent, name)
        assert element is not None and element.type in ("code", "Coding", "CodeableConcept"), path


def test_every_bound_value_set_is_shipped_with_its_codes(registry):
    for path, url in TABLE["bindings"].items():
        expansion = registry.terminology.expansion(url)
        assert expansion is not None and expansion.codes and not expansion.open_systems, (path, url)


def test_binding_of_a_datatype_applies_to_its_profiles(registry):
    # Age, Duration... are Quantity: Quantity.comparator's binding holds for them.
    assert registry.required_binding("Age.comparator") == TABLE["bindings"]["Quantity.comparator"]
    dosage = {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
              "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "x"},
              "dosageInstruction": [{"timing": {"repeat": {"boundsDuration": {"value": 3, "comparator": "about"},
                                                           "when": ["AC", "sometime"]}}}]}
    found = {tuple(i.expression) for i in check_base_structure(dosage, registry)}
    assert found == {("MedicationRequest.dosageInstruction[0].timing.repeat.boundsDuration.comparator",),
                     ("MedicationRequest.dosageInstruction[0].timing.repeat.when[1]",)}


def test_code_on_a_codeable_concept_binding(registry):
    condition = {"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                 "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "gone"}]}}
    assert [i.expression for i in check_base_structure(condition, registry)] == [["Condition.clinicalStatus"]]
    condition["clinicalStatus"]["coding"][0]["code"] = "resolved"
    assert check_base_structure(condition, registry) == []
