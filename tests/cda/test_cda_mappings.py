"""The mapping tables in mappings/cda are consistent with each other and with FHIR value sets."""

from cda.mappings import table


def test_every_format_entry_names_a_declared_code_system():
    formats = table("template_to_format")
    entries = [*formats["templates"].values(), *formats["media_types"].values()]
    assert entries
    assert {entry["system"] for entry in entries} <= set(formats["systems"])


def test_every_document_type_maps_to_a_declared_class():
    classes = table("type_to_class")
    assert set(classes["types"].values()) <= set(classes["classes"])


def test_medication_section_rules_use_fhir_codes():
    rules = table("medication_sections")["sections"].values()
    assert {rule["intent"] for rule in rules} <= {"proposal", "plan", "order", "original-order"}
    assert {rule["status"] for rule in rules} <= {"active", "completed", "unknown"}


def test_gender_and_timing_targets_are_fhir_codes():
    assert set(table("administrative_gender").values()) <= {"male", "female", "other", "unknown"}
    assert set(table("timing_units").values()) <= {"s", "min", "h", "d", "wk", "mo", "a"}


def test_documentation_keys_are_not_data():
    assert all(not key.startswith("_") for key in table("code_systems"))
