"""The position on organ and tissue donation over HTTP: the shape pinned in docs/RECORD-CONTENTS.md
is stored and found; a position without whether the relatives were told, an unknown position or a
refusal in part that does not say what is refused is a 422 with nothing stored."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import httpx
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "RECORD-CONTENTS.md"
ORGAN_DONATION = "https://fhir-server.example.org/CodeSystem/organ-donation"


def documented_example() -> dict:
    """The JSON example of the organ donation section of docs/RECORD-CONTENTS.md, so the doc and
    the rule cannot drift apart."""
    section = DOC.read_text(encoding="utf-8").split("## f) Organ and tissue donation", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))


def position(unique: str) -> dict:
    example = documented_example()
    example["identifier"] = [{"system": "urn:test:organ-donation", "value": unique}]
    example["subject"] = {"reference": f"Patient/{unique}"}
    example["performer"] = [{"reference": f"Patient/{unique}"}]
    return example


def stored(fhir: httpx.Client, unique: str) -> list[dict]:
    bundle = fhir.get("/Observation", params={"identifier": f"urn:test:organ-donation|{unique}"}).json()
    return [entry["resource"] for entry in bundle.get("entry", [])]


def test_the_documented_position_is_stored_and_found_by_code(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("/Observation", json=position(unique))
    assert response.status_code == 201, response.text
    found = fhir.get("/Observation", params={"subject": f"Patient/{unique}", "code": "http://loinc.org|75781-5"}).json()
    [entry] = found["entry"]
    assert entry["resource"]["valueCodeableConcept"]["coding"][0]["code"] == "opposed-in-part"


def without_relatives(sent: dict) -> dict:
    sent["component"] = [c for c in sent["component"] if c["code"]["coding"][0]["code"] != "relatives-informed"]
    return sent


def unknown_position(sent: dict) -> dict:
    sent["valueCodeableConcept"] = {"coding": [{"system": ORGAN_DONATION, "code": "undecided"}]}
    return sent


def refusal_in_part_without_note(sent: dict) -> dict:
    del sent["note"]
    return sent


def relatives_as_text(sent: dict) -> dict:
    for component in sent["component"]:
        if component["code"]["coding"][0]["code"] == "relatives-informed":
            component["valueString"] = "oui"
            del component["valueBoolean"]
    return sent


@pytest.mark.parametrize(("change", "rule"), [
    (without_relatives, "organ-donation-1"),
    (relatives_as_text, "organ-donation-1"),
    (unknown_position, "organ-donation-position"),
    (refusal_in_part_without_note, "organ-donation-2"),
])
def test_a_position_outside_the_shape_is_refused(fhir: httpx.Client, unique: str, change, rule: str) -> None:
    response = fhir.post("/Observation", json=change(copy.deepcopy(position(unique))))
    assert response.status_code == 422, response.text
    assert rule in response.text
    assert stored(fhir, unique) == []
