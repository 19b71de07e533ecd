"""token parameters: system|code, code, system|, |code; :not, :text, :of-type, :missing; OR and AND."""

from __future__ import annotations

import pytest

from tests.search.conftest import STRICT, Store

LOINC = "http://loinc.org"
INS = "urn:oid:1.2.250.1.213.1.4.8"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def observation(code: str, system: str | None, display: str, status: str = "final") -> dict:
    coding = {"code": code, "display": display}
    if system:
        coding["system"] = system
    return {"resourceType": "Observation", "status": status, "code": {"coding": [coding], "text": display}}


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    return {
        "glucose": store.create(observation("15074-8", LOINC, "Glucose [Moles/volume] in Blood")),
        "hba1c": store.create(observation("4548-4", LOINC, "Hémoglobine glyquée", status="amended")),
        "local": store.create(observation("4548-4", "http://example.org/local", "Local HbA1c")),
        "nosystem": store.create(observation("4548-4", None, "No system")),
        "ins": store.create({
            "resourceType": "Patient", "active": True, "gender": "female",
            "identifier": [{"system": INS, "value": "248017512345678",
                            "type": {"coding": [{"system": V2_0203, "code": "NI"}], "text": "INS-NIR"}}],
        }),
        "mr": store.create({
            "resourceType": "Patient", "active": False, "gender": "male",
            "identifier": [{"system": "http://example.org/mrn", "value": "MR-1",
                            "type": {"coding": [{"system": V2_0203, "code": "MR"}]}}],
        }),
        "bare": store.create({"resourceType": "Patient", "telecom": [
            {"system": "phone", "value": "+33 6 12 34 56 78"}, {"system": "email", "value": "marie.curie@example.fr"}]}),
    }


def test_system_and_code(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"code": f"{LOINC}|4548-4"}) == {data["hba1c"]}


def test_code_alone_matches_any_system(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"code": "4548-4"}) == {data["hba1c"], data["local"], data["nosystem"]}


def test_system_alone(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"code": f"{LOINC}|"}) == {data["glucose"], data["hba1c"]}


def test_code_without_system(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"code": "|4548-4"}) == {data["nosystem"]}


def test_no_match(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"code": f"{LOINC}|0000-0"}) == set()
    assert store.ids("/Observation", {"code": "http://snomed.info/sct|"}) == set()


def test_code_and_boolean_elements(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"gender": "female"}) == {data["ins"]}
    assert store.ids("/Patient", {"active": "true"}) == {data["ins"]}
    assert store.ids("/Patient", {"active": "false"}) == {data["mr"]}


def test_identifier(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"identifier": f"{INS}|248017512345678"}) == {data["ins"]}
    assert store.ids("/Patient", {"identifier": "MR-1"}) == {data["mr"]}
    assert store.ids("/Patient", {"identifier": f"{INS}|MR-1"}) == set()


def test_or_with_commas(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"code": f"{LOINC}|15074-8,|4548-4"}) == {data["glucose"], data["nosystem"]}


def test_and_with_repeated_parameters(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", [("code", "4548-4"), ("code", f"{LOINC}|")]) == {data["hba1c"]}
    assert store.ids("/Observation", [("code", "4548-4"), ("status", "amended")]) == {data["hba1c"]}
    assert store.ids("/Observation", [("code", "15074-8"), ("status", "amended")]) == set()


def test_not(store: Store, data: dict[str, str]) -> None:
    everything = {data["glucose"], data["hba1c"], data["local"], data["nosystem"]}
    assert store.ids("/Observation", {"code:not": f"{LOINC}|4548-4"}) == everything - {data["hba1c"]}
    assert store.ids("/Observation", {"status:not": "final"}) == {data["hba1c"]}
    # :not on a patient without the element matches it too (search.html: "does not have a value").
    assert store.ids("/Patient", {"gender:not": "female"}) == {data["mr"], data["bare"]}


def test_not_with_or_excludes_every_listed_value(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"gender:not": "female,male"}) == {data["bare"]}


def test_text_matches_display_and_text_accent_insensitively(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Observation", {"code:text": "hemoglobine"}) == {data["hba1c"]}
    assert store.ids("/Observation", {"code:text": "GLUCOSE"}) == {data["glucose"]}
    assert store.ids("/Observation", {"code:text": "cholesterol"}) == set()


def test_of_type(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"identifier:of-type": f"{V2_0203}|NI|248017512345678"}) == {data["ins"]}
    assert store.ids("/Patient", {"identifier:of-type": f"{V2_0203}|MR|248017512345678"}) == set()
    assert store.get("/Patient", {"identifier:of-type": "NI"}, headers=STRICT).status_code == 400


def test_contact_points(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"phone": "+33 6 12 34 56 78"}) == {data["bare"]}
    assert store.ids("/Patient", {"email": "marie.curie@example.fr"}) == {data["bare"]}
    assert store.ids("/Patient", {"email": "+33 6 12 34 56 78"}) == set()
    assert store.ids("/Patient", {"telecom": "marie.curie@example.fr"}) == {data["bare"]}


def test_missing(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"gender:missing": "true"}) == {data["bare"]}
    assert store.ids("/Patient", {"gender:missing": "false"}) == {data["ins"], data["mr"]}
    assert store.get("/Patient", {"gender:missing": "maybe"}, headers=STRICT).status_code == 400
