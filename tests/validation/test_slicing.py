"""Slice rules on their own, with a small profile written for the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhir_server.validation import ProfileRegistry, validate_resource

URL = "https://fhir-server.example.org/StructureDefinition/test-ins-required"


def _element(element_id: str, **properties) -> dict:
    path = ".".join(part.split(":")[0] for part in element_id.split("."))
    return {"id": element_id, "path": path, **properties}


@pytest.fixture
def slicing_registry(tmp_path: Path) -> ProfileRegistry:
    profile = {
        "resourceType": "StructureDefinition",
        "id": "test-ins-required",
        "url": URL,
        "name": "TestInsRequired",
        "status": "draft",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {
            "element": [
                _element("Patient"),
                _element(
                    "Patient.identifier",
                    slicing={"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"},
                ),
                _element("Patient.identifier:INS-NIR", sliceName="INS-NIR", min=1, max="1"),
                _element("Patient.identifier:INS-NIR.system", fixedUri="urn:oid:1.2.250.1.213.1.4.8"),
                _element("Patient.identifier:IPP", sliceName="IPP", min=0, max="1"),
                _element("Patient.identifier:IPP.system", fixedUri="urn:oid:1.2.250.1.999.1.1.1"),
            ]
        },
    }
    folder = tmp_path / "StructureDefinition"
    folder.mkdir()
    (folder / "StructureDefinition-test-ins-required.json").write_text(json.dumps(profile))
    return ProfileRegistry.load(tmp_path)


def _patient(*systems: str) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": s, "value": "1"} for s in systems]}


def test_slice_present(slicing_registry):
    patient = _patient("urn:oid:1.2.250.1.999.1.1.1", "urn:oid:1.2.250.1.213.1.4.8")
    assert validate_resource(patient, URL, slicing_registry) == []


def test_mandatory_slice_missing(slicing_registry):
    issues = validate_resource(_patient("urn:oid:1.2.250.1.999.1.1.1"), URL, slicing_registry)
    assert [(i.severity, i.code, i.expression) for i in issues] == [("error", "required", ["Patient.identifier"])]
    assert "identifier:INS-NIR" in issues[0].diagnostics


def test_slice_over_its_maximum(slicing_registry):
    patient = _patient("urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.8")
    issues = validate_resource(patient, URL, slicing_registry)
    assert [(i.code, i.expression) for i in issues] == [("structure", ["Patient.identifier[1]"])]


def test_closed_slicing_rejects_unknown_items(slicing_registry):
    patient = _patient("urn:oid:1.2.250.1.213.1.4.8", "urn:oid:9.9.9")
    issues = validate_resource(patient, URL, slicing_registry)
    assert [(i.code, i.expression) for i in issues] == [("structure", ["Patient.identifier[1]"])]
