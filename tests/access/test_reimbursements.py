"""Reimbursements (issue 23, docs/RECORD-CONTENTS.md item d): the insurer alone writes
ExplanationOfBenefit, by every path (create, update, delete, batch, transaction); the patient and
the professionals the record's rules let in read them. Every refusal leaves nothing stored, and
each has its control: the same write by the insurer is accepted."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
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
    # A speech therapist (TRE_G15 91), authorised: the habilitation matrix shows them no document type.
    world.practitioner("S", profession="91")
    world.system("H", new_finess())  # a hospital system
    insurer_finess = new_finess()
    world.tokens["I"] = server_token(server.data_dir, server.base_url, "system", organization=insurer_finess,
                                     role="insurer")
    world.tokens["I2"] = server_token(server.data_dir, server.base_url, "system", organization=new_finess(),
                                      role="insurer")
    world.patient_id, ins = world.patient()
    world.patient_caller("P", ins)
    world.consent(world.patient_id, "permit", world.professionals["A"])
    world.consent(world.patient_id, "permit", world.professionals["S"])
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


def test_a_claim_names_a_stored_patient(world: World) -> None:
    for reference in (f"Patient/{uuid.uuid4()}", "https://elsewhere.example.org/fhir/Patient/1"):
        resource = eob(reference, uuid.uuid4().hex)
        response = world.request("I", "POST", f"/{EOB}", json=resource)
        assert response.status_code == 422, response.text
        assert stored_claims(world, resource["identifier"][0]["value"]) == []


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


def test_only_professions_that_see_reimbursement_data_read_them(world: World) -> None:
    stored = deposit(world)
    observation = world.create({"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                                "subject": {"reference": f"Patient/{world.patient_id}"}})
    # Authorised, the speech therapist reads the record (not a 403) but not its reimbursements.
    assert world.get("S", f"/Observation/{observation}").status_code == 200
    assert world.get("S", f"/{EOB}/{stored['id']}").status_code == 404
    found = world.get("S", f"/{EOB}", params={"patient": f"Patient/{world.patient_id}"})
    assert found.status_code == 200 and bundle_ids(found.json(), EOB) == set()
    assert world.get("A", f"/{EOB}/{stored['id']}").status_code == 200


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




# -- the NDJSON import ------------------------------------------------------------------------------

NDJSON = {"Content-Type": "application/fhir+ndjson"}


def ndjson(resources: list[Any]) -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in resources) + b"\n"


def post_import(world: World, caller: str, body: bytes, **headers: str) -> httpx.Response:
    return world.request(caller, "POST", "/$import", content=body, headers={**NDJSON, **headers})


def summary(response: httpx.Response) -> tuple[str, list[str]]:
    issues = response.json()["issue"]
    return issues[0]["diagnostics"], [i["diagnostics"] for i in issues[1:]]


def test_import_stores_good_lines_and_names_the_bad_ones(world: World) -> None:
    good = [claim(world) for _ in range(4)]
    invalid = {**claim(world), "status": "not-a-status"}
    closed = claim(world, world.patients["closed"])
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "subject": {"reference": f"Patient/{world.patient_id}"}}
    unknown = eob(f"Patient/{uuid.uuid4()}", uuid.uuid4().hex)
    lines = [good[0], b"{not json", good[1], invalid, good[2], closed, observation, good[3], unknown]
    response = post_import(world, "I", ndjson(lines))
    assert response.status_code == 200, response.text
    head, refused = summary(response)
    assert head == "9 lines read: 4 stored (4 created, 0 updated), 0 unchanged, 5 refused"
    assert [r.split(" ", 2)[1] for r in refused] == ["2", "4", "6", "7", "9"]
    assert "closed" in refused[2] and "(refused, 403)" in refused[2] and "(refused, 400)" in refused[1] and "status" in refused[1]
    for resource in good:
        assert len(stored_claims(world, resource["identifier"][0]["value"])) == 1
    for resource in (invalid, closed, unknown):
        assert stored_claims(world, resource["identifier"][0]["value"]) == []
    # The patient reads what was imported.
    found = world.get("P", f"/{EOB}", params={"identifier": f"{CLAIM_SYSTEM}|{good[3]['identifier'][0]['value']}"})
    assert len(found.json().get("entry", [])) == 1


def test_import_again_changes_nothing_and_a_changed_line_is_a_new_version(world: World) -> None:
    lines = [claim(world) for _ in range(3)]
    first = post_import(world, "I", ndjson(lines))
    assert summary(first)[0] == "3 lines read: 3 stored (3 created, 0 updated), 0 unchanged, 0 refused"
    lines[1] = {**lines[1], "outcome": "partial"}
    again = post_import(world, "I", gzip.compress(ndjson(lines)), **{"Content-Encoding": "gzip"})
    assert again.status_code == 200, again.text
    assert summary(again)[0] == "3 lines read: 1 stored (0 created, 1 updated), 2 unchanged, 0 refused"
    versions = [stored_claims(world, r["identifier"][0]["value"]) for r in lines]
    assert [(len(v), v[0]["meta"]["versionId"]) for v in versions] == [(1, "1"), (1, "2"), (1, "1")]
    assert versions[1][0]["outcome"] == "partial"


def test_a_later_line_for_the_same_claim_is_its_next_version(world: World) -> None:
    first = claim(world)
    second = {**first, "outcome": "partial"}
    response = post_import(world, "I", ndjson([first, claim(world), second]))
    assert summary(response)[0] == "3 lines read: 3 stored (2 created, 1 updated), 0 unchanged, 0 refused"
    (stored,) = stored_claims(world, first["identifier"][0]["value"])
    assert (stored["meta"]["versionId"], stored["outcome"]) == ("2", "partial")


def test_import_is_the_insurer_s_for_reimbursements(world: World) -> None:
    resource = claim(world)
    response = post_import(world, "H", ndjson([resource]))
    assert response.status_code == 200, response.text
    assert summary(response)[0].endswith("1 refused")
    assert stored_claims(world, resource["identifier"][0]["value"]) == []
    # People do not import.
    assert is_refusal(post_import(world, "P", ndjson([resource])))


def test_import_refuses_what_is_not_ndjson(world: World) -> None:
    response = world.request("I", "POST", "/$import", json=claim(world))
    assert response.status_code == 415
    assert post_import(world, "I", b"\n\n").status_code == 400
    broken = post_import(world, "I", b"not gzip", **{"Content-Encoding": "gzip"})
    assert broken.status_code == 400 and broken.json()["resourceType"] == "OperationOutcome"
