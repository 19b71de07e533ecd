"""Reimbursements (issue 23, docs/RECORD-CONTENTS.md item d): the insurer alone writes
ExplanationOfBenefit, by every path (create, update, delete, batch, transaction); the patient and
the professionals the record's rules let in read them. Every refusal leaves nothing stored, and
each has its control: the same write by the insurer is accepted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.claims import CLAIM_SYSTEM, eob
from tests.access.world import World, bundle_ids, is_refusal, new_finess, open_world
from tests.server_process import ServerProcess, server_token

EOB = "ExplanationOfBenefit"


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")  # authorised by the patient
    world.practitioner("U")  # authorised by no one
    world.system("H", new_finess())  # a hospital system
    insurer_finess = new_finess()
    world.tokens["I"] = server_token(server.data_dir, server.base_url, "system", organization=insurer_finess,
                                     role="insurer")
    world.tokens["I2"] = server_token(server.data_dir, server.base_url, "system", organization=new_finess(),
                                      role="insurer")
    world.patient_id, ins = world.patient()
    world.patient_caller("P", ins)
    world.consent(world.patient_id, "permit", world.professionals["A"])
    world.patients["closed"], _ = world.patient(status="closed")
    yield world
    world.http.close()


def claim(world: World, patient_id: str | None = None) -> dict[str, Any]:
    return eob(f"Patient/{patient_id or world.patient_id}", uuid.uuid4().hex)


def stored_claims(world: World, number: str) -> list[dict[str, Any]]:
    """What the store holds under a claim number, as the platform sees it."""
    response = world.get("platform", f"/{EOB}", params={"identifier": f"{CLAIM_SYSTEM}|{number}"})
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def deposit(world: World) -> dict[str, Any]:
    response = world.request("I", "POST", f"/{EOB}", json=claim(world))
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize("caller", ["A", "H", "P"])
def test_only_the_insurer_creates_reimbursements(world: World, caller: str) -> None:
    resource = claim(world)
    number = resource["identifier"][0]["value"]
    refused = world.request(caller, "POST", f"/{EOB}", json=resource)
    assert is_refusal(refused), refused.text
    assert stored_claims(world, number) == []
    accepted = world.request("I", "POST", f"/{EOB}", json=resource)
    assert accepted.status_code == 201, accepted.text
    assert [r["id"] for r in stored_claims(world, number)] == [accepted.json()["id"]]


def test_a_system_of_no_organisation_without_the_role_is_refused(world: World) -> None:
    world.tokens["tool"] = server_token(world.server.data_dir, world.server.base_url, "system", client_id="local-tool")
    resource = claim(world)
    assert is_refusal(world.request("tool", "POST", f"/{EOB}", json=resource))
    assert stored_claims(world, resource["identifier"][0]["value"]) == []


@pytest.mark.parametrize("caller", ["A", "P"])
def test_nobody_else_changes_or_deletes_them(world: World, caller: str) -> None:
    stored = deposit(world)
    changed = {**stored, "outcome": "error"}
    assert is_refusal(world.request(caller, "PUT", f"/{EOB}/{stored['id']}", json=changed))
    assert is_refusal(world.request(caller, "DELETE", f"/{EOB}/{stored['id']}"))
    kept = world.get("platform", f"/{EOB}/{stored['id']}").json()
    assert (kept["meta"]["versionId"], kept["outcome"]) == ("1", "complete")
    assert world.request("I", "PUT", f"/{EOB}/{stored['id']}", json=changed).status_code == 200
    assert world.request("I", "DELETE", f"/{EOB}/{stored['id']}").status_code in (200, 204)
    assert world.get("platform", f"/{EOB}/{stored['id']}").status_code == 410


def test_the_platform_writes_them_for_migrations(world: World) -> None:
    assert world.request("platform", "POST", f"/{EOB}", json=claim(world)).status_code == 201


def test_the_insurer_writes_nothing_else_of_a_record(world: World) -> None:
    marker = uuid.uuid4().hex
    observation = {"resourceType": "Observation", "status": "final", "identifier": [{"value": marker}],
                   "code": {"text": "note"}, "subject": {"reference": f"Patient/{world.patient_id}"}}
    assert is_refusal(world.request("I", "POST", "/Observation", json=observation))
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:example", "value": marker}]}
    assert is_refusal(world.request("I", "POST", "/Patient", json=patient))
    for rtype in ("Observation", "Patient"):
        found = world.get("platform", f"/{rtype}", params={"identifier": marker}).json()
        assert found.get("entry", []) == [], rtype
    # Its Coverage and its own Organization, yes; another's Organization, no.
    coverage = {"resourceType": "Coverage", "status": "active", "beneficiary": {"reference": f"Patient/{world.patient_id}"},
                "payor": [{"display": "Assurance Maladie"}]}
    assert world.request("I", "POST", "/Coverage", json=coverage).status_code == 201
    organization = {"resourceType": "Organization", "name": f"CPAM {marker}"}
    own = world.request("I", "POST", "/Organization", json=organization)
    assert own.status_code == 201, own.text
    renamed = {**own.json(), "name": f"CPAM {marker} renamed"}
    assert world.request("I", "PUT", f"/Organization/{own.json()['id']}", json=renamed).status_code == 200
    others = world.create({"resourceType": "Organization", "name": f"Hospital {marker}"})
    current = world.get("platform", f"/Organization/{others}").json()
    assert is_refusal(world.request("I", "PUT", f"/Organization/{others}", json={**current, "name": "taken"}))
    assert world.get("platform", f"/Organization/{others}").json()["name"] == f"Hospital {marker}"


def test_no_deposit_in_a_closed_record(world: World) -> None:
    resource = claim(world, world.patients["closed"])
    assert is_refusal(world.request("I", "POST", f"/{EOB}", json=resource))
    assert stored_claims(world, resource["identifier"][0]["value"]) == []


def test_the_patient_and_an_authorised_professional_read_them(world: World) -> None:
    stored = deposit(world)
    for caller in ("P", "A"):
        read = world.get(caller, f"/{EOB}/{stored['id']}")
        assert read.status_code == 200, (caller, read.text)
        found = world.get(caller, f"/{EOB}", params={"patient": f"Patient/{world.patient_id}", "_count": "500"})
        assert stored["id"] in bundle_ids(found.json(), EOB), caller
    assert is_refusal(world.get("U", f"/{EOB}/{stored['id']}"))
    assert is_refusal(world.get("U", f"/{EOB}", params={"patient": f"Patient/{world.patient_id}"}))


def _bundle(kind: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r,
                       "request": {"method": "POST", "url": r["resourceType"]}} for r in resources]}


def test_batch_and_transaction_deposits(world: World) -> None:
    claims = [claim(world) for _ in range(3)]
    response = world.request("I", "POST", "", json=_bundle("transaction", claims))
    assert response.status_code == 200, response.text
    assert [e["response"]["status"][:3] for e in response.json()["entry"]] == ["201"] * 3
    assert all(len(stored_claims(world, c["identifier"][0]["value"])) == 1 for c in claims)
    batch = [claim(world), claim(world)]
    response = world.request("I", "POST", "", json=_bundle("batch", batch))
    assert [e["response"]["status"][:3] for e in response.json()["entry"]] == ["201", "201"]


def test_a_transaction_with_a_refused_entry_stores_nothing(world: World) -> None:
    claims = [claim(world), claim(world)]
    # The hospital may not write reimbursements: its transaction is refused whole.
    response = world.request("H", "POST", "", json=_bundle("transaction", claims))
    assert response.status_code == 403, response.text
    assert all(stored_claims(world, c["identifier"][0]["value"]) == [] for c in claims)
    # In a batch, each entry is decided alone: the insurer's claim is stored, its Observation is not.
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "note"},
                   "subject": {"reference": f"Patient/{world.patient_id}"}}
    response = world.request("I", "POST", "", json=_bundle("batch", [claims[0], observation]))
    assert [e["response"]["status"][:3] for e in response.json()["entry"]] == ["201", "403"]
    assert len(stored_claims(world, claims[0]["identifier"][0]["value"])) == 1


def test_another_insurer_cannot_overwrite_a_claim(world: World) -> None:
    stored = deposit(world)
    response = world.request("I2", "PUT", f"/{EOB}/{stored['id']}", json={**stored, "outcome": "error"})
    assert response.status_code in (403, 409), response.text
    assert world.get("platform", f"/{EOB}/{stored['id']}").json()["outcome"] == "complete"


