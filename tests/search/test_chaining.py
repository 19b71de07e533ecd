"""Chained parameters (patient.identifier, subject:Patient.name, two links) and reverse chaining (_has)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.search.conftest import STRICT, Store

INS = "urn:oid:1.2.250.1.213.1.4.8"
LOINC = "http://loinc.org"


def document(patient: str, type_code: str, author: str | None = None) -> dict:
    resource = {
        "resourceType": "DocumentReference", "status": "current",
        "type": {"coding": [{"system": LOINC, "code": type_code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": {"contentType": "application/pdf", "url": "http://example.org/doc.pdf"}}],
    }
    if author:
        resource["author"] = [{"reference": author}]
    return resource


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    org = store.create({"resourceType": "Organization", "name": "Clinique des Lilas"})
    doctor = store.create({"resourceType": "Practitioner", "name": [{"family": "Moreau"}]})
    role = store.create({"resourceType": "PractitionerRole", "practitioner": {"reference": f"Practitioner/{doctor}"},
                         "organization": {"reference": f"Organization/{org}"}})
    alice = store.create({"resourceType": "Patient", "name": [{"family": "Girard", "given": ["Alice"]}],
                          "identifier": [{"system": INS, "value": "123"}], "managingOrganization": {"reference": f"Organization/{org}"}})
    bob = store.create({"resourceType": "Patient", "name": [{"family": "Roux", "given": ["Bob"]}],
                        "identifier": [{"system": INS, "value": "456"}]})
    carol = store.create({"resourceType": "Patient", "name": [{"family": "Girardot"}]})
    return {
        "org": org, "doctor": doctor, "role": role, "alice": alice, "bob": bob, "carol": carol,
        "alice_cr": store.create(document(alice, "11490-0", f"PractitionerRole/{role}")),
        "alice_lab": store.create(document(alice, "11502-2")),
        "bob_cr": store.create(document(bob, "11490-0", f"Practitioner/{doctor}")),
        "bob_img": store.create(document(bob, "18748-4")),
    }


def test_chain_on_identifier(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/DocumentReference", {"patient.identifier": f"{INS}|123"}) == {data["alice_cr"], data["alice_lab"]}
    assert store.ids("/DocumentReference", {"patient.identifier": f"{INS}|999"}) == set()


def test_chain_with_type_modifier_on_string(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/DocumentReference", {"subject:Patient.name": "roux"}) == {data["bob_cr"], data["bob_img"]}
    assert store.ids("/DocumentReference", {"subject:Patient.name": "girard"}) == {data["alice_cr"], data["alice_lab"]}
    assert store.ids("/DocumentReference", {"subject:Patient.name:exact": "Girardot"}) == set()


def test_chain_or_values(store: Store, data: dict[str, str]) -> None:
    both = store.ids("/DocumentReference", {"patient.identifier": f"{INS}|123,{INS}|456"})
    assert both == {data["alice_cr"], data["alice_lab"], data["bob_cr"], data["bob_img"]}


def test_chain_combined_with_a_plain_parameter(store: Store, data: dict[str, str]) -> None:
    found = store.ids("/DocumentReference", [("patient.identifier", f"{INS}|123"), ("type", f"{LOINC}|11490-0")])
    assert found == {data["alice_cr"]}


def test_chain_over_two_links(store: Store, data: dict[str, str]) -> None:
    found = store.ids("/DocumentReference", {"author:PractitionerRole.practitioner.name": "moreau"})
    assert found == {data["alice_cr"]}
    assert store.ids("/DocumentReference", {"patient.organization.name": "clinique"}) == {data["alice_cr"], data["alice_lab"]}


def test_chain_on_non_reference_or_unknown_parameter_is_an_error(store: Store, data: dict[str, str]) -> None:
    assert store.get("/DocumentReference", {"status.name": "x"}, headers=STRICT).status_code == 400
    assert store.get("/DocumentReference", {"patient.nosuch": "x"}, headers=STRICT).status_code == 400


def test_has(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"_has:DocumentReference:subject:type": f"{LOINC}|11490-0"}) == {data["alice"], data["bob"]}
    assert store.ids("/Patient", {"_has:DocumentReference:subject:type": f"{LOINC}|18748-4"}) == {data["bob"]}
    assert store.ids("/Patient", {"_has:DocumentReference:subject:type": f"{LOINC}|00000-0"}) == set()


def test_has_with_or_and_and(store: Store, data: dict[str, str]) -> None:
    either = store.ids("/Patient", {"_has:DocumentReference:patient:type": f"{LOINC}|11502-2,{LOINC}|18748-4"})
    assert either == {data["alice"], data["bob"]}
    both = store.ids("/Patient", [("_has:DocumentReference:patient:type", f"{LOINC}|11490-0"),
                                  ("_has:DocumentReference:patient:type", f"{LOINC}|18748-4")])
    assert both == {data["bob"]}
    assert store.ids("/Patient", [("_has:DocumentReference:patient:type", "11490-0"), ("name", "girard")]) == {data["alice"]}


def test_nested_has(store: Store, data: dict[str, str]) -> None:
    # Practitioners with a role whose documents (as author) exist.
    found = store.ids("/Practitioner", {"_has:PractitionerRole:practitioner:_has:DocumentReference:author:type": "11490-0"})
    assert found == {data["doctor"]}


@pytest.fixture(scope="module")
def practice(fhir: httpx.Client) -> tuple[Store, dict[str, str]]:
    """Practitioners of their own tag: with a role that authored a discharge letter, with a role
    that authored only an imaging report, authoring a letter without a role, and with a role that
    authored nothing."""
    own = Store(fhir, uuid.uuid4().hex[:12])
    patient = own.create({"resourceType": "Patient", "name": [{"family": "Lemoine"}]})
    ids = {name: own.create({"resourceType": "Practitioner", "name": [{"family": name}]})
           for name in ("letter", "imaging", "direct", "idle")}
    roles = {name: own.create({"resourceType": "PractitionerRole", "practitioner": {"reference": f"Practitioner/{ids[name]}"}})
             for name in ("letter", "imaging", "idle")}
    own.create(document(patient, "11490-0", f"PractitionerRole/{roles['letter']}"))
    own.create(document(patient, "18748-4", f"PractitionerRole/{roles['imaging']}"))
    own.create(document(patient, "11490-0", f"Practitioner/{ids['direct']}"))
    return own, ids


@pytest.mark.parametrize(("criteria", "expected"), [
    ([("_has:PractitionerRole:practitioner:_has:DocumentReference:author:type", f"{LOINC}|11490-0")], {"letter"}),
    ([("_has:PractitionerRole:practitioner:_has:DocumentReference:author:type", f"{LOINC}|18748-4")], {"imaging"}),
    ([("_has:PractitionerRole:practitioner:_has:DocumentReference:author:type", f"{LOINC}|11490-0,{LOINC}|18748-4")],
     {"letter", "imaging"}),
    ([("_has:PractitionerRole:practitioner:_has:DocumentReference:author:type", f"{LOINC}|11490-0"),
      ("_has:PractitionerRole:practitioner:_has:DocumentReference:author:type", f"{LOINC}|18748-4")], set()),
    ([("_has:PractitionerRole:practitioner:_has:DocumentReference:author:type", f"{LOINC}|00000-0")], set()),
    ([("_has:PractitionerRole:practitioner:_has:DocumentReference:author:type", "11490-0"), ("name", "imaging")], set()),
    # One level: only the practitioner who authored a letter himself, not through a role.
    ([("_has:DocumentReference:author:type", "11490-0")], {"direct"}),
])
def test_nested_has_follows_each_link(practice: tuple[Store, dict[str, str]], criteria: list[tuple[str, str]], expected: set[str]) -> None:
    own, ids = practice
    assert own.ids("/Practitioner", criteria) == {ids[name] for name in expected}


def test_has_over_roles_finds_every_practitioner_a_role_names(practice: tuple[Store, dict[str, str]]) -> None:
    own, ids = practice
    found = own.ids("/Practitioner", [("_has:PractitionerRole:practitioner:_tag", own.tag_param[1])])
    assert found == {ids["letter"], ids["imaging"], ids["idle"]}


def test_malformed_has_is_an_error(store: Store, data: dict[str, str]) -> None:
    assert store.get("/Patient", {"_has:DocumentReference:type": "x"}, headers=STRICT).status_code == 400
    assert store.get("/Patient", {"_has:NoSuchType:subject:type": "x"}, headers=STRICT).status_code == 400
    assert store.get("/Patient", {"_has:DocumentReference:status:type": "x"}, headers=STRICT).status_code == 400
