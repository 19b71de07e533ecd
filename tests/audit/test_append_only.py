"""AuditEvents are append-only (issue 13, ../shared/DECISIONS.md): a client records one (IHE ITI-20),
nobody changes or deletes one, platform and admin included, on any path: instance and conditional
PUT, PATCH and DELETE, and bundle entries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.world import World, new_finess, open_world
from tests.audit.trail import references, trail
from tests.server_process import ServerProcess, server_token

CALLERS = ("platform", "admin", "A", "P", "H")


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")
    world.system("H", new_finess())
    world.patient_id, ins = world.patient()
    world.patient_caller("P", ins)
    world.tokens["admin"] = server_token(server.data_dir, server.base_url, "admin")
    world.consent(world.patient_id, "permit", world.professionals["A"])
    yield world
    world.http.close()


def client_event(patient: str) -> dict[str, Any]:
    """What a client records after showing a document (ITI-20)."""
    return {"resourceType": "AuditEvent", "recorded": "2026-12-01T10:00:00Z", "outcome": "0", "action": "R",
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
            "agent": [{"who": {"display": "client software"}, "requestor": True}],
            "source": {"observer": {"display": "client software"}},
            "entity": [{"what": {"reference": f"Patient/{patient}"}}]}


@pytest.fixture(scope="module")
def recorded(world: World) -> dict[str, Any]:
    response = world.request("H", "POST", "/AuditEvent", json=client_event(world.patient_id))
    assert response.status_code == 201, response.text
    return dict(response.json())


def is_refused(response: Any) -> bool:
    return response.status_code == 405 and response.json()["resourceType"] == "OperationOutcome"


def test_a_client_records_an_event_that_the_patient_then_reads(world: World, recorded: dict[str, Any]) -> None:
    [found] = [e for e in trail(world, "P") if e["id"] == recorded["id"]]
    assert found["source"]["observer"]["display"] == "client software"
    assert f"Patient/{world.patient_id}" in references(found)


def test_an_invalid_event_is_refused(world: World) -> None:
    response = world.request("H", "POST", "/AuditEvent", json={"resourceType": "AuditEvent", "outcome": 7})
    assert response.status_code in (400, 422) and response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("caller", CALLERS)
def test_nobody_changes_or_deletes_an_event(world: World, recorded: dict[str, Any], caller: str) -> None:
    path = f"/AuditEvent/{recorded['id']}"
    changed = {**recorded, "outcome": "8"}
    patch = [{"op": "replace", "path": "/outcome", "value": "8"}]
    attempts = [
        world.request(caller, "PUT", path, json=changed),
        world.request(caller, "PATCH", path, json=patch, headers={"Content-Type": "application/json-patch+json"}),
        world.request(caller, "DELETE", path),
        world.request(caller, "PUT", "/AuditEvent", params={"_id": recorded["id"]}, json=changed),
        world.request(caller, "PATCH", "/AuditEvent", params={"_id": recorded["id"]}, json=patch,
                      headers={"Content-Type": "application/json-patch+json"}),
        world.request(caller, "DELETE", "/AuditEvent", params={"_id": recorded["id"]}),
    ]
    assert [a.status_code for a in attempts if not is_refused(a)] == []
    [still] = [e for e in trail(world) if e["id"] == recorded["id"]]
    assert still == recorded


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_bundle_entries_cannot_write_audit_events(world: World, recorded: dict[str, Any], method: str) -> None:
    entry: dict[str, Any] = {"request": {"method": method, "url": "AuditEvent" if method == "POST"
                                         else f"AuditEvent/{recorded['id']}"}}
    if method != "DELETE":
        entry["resource"] = {**recorded, "outcome": "8"} if method == "PUT" else client_event(world.patient_id)
    transaction = world.request("platform", "POST", "", json={"resourceType": "Bundle", "type": "transaction",
                                                               "entry": [entry]})
    assert is_refused(transaction), transaction.text
    batch = world.request("platform", "POST", "", json={"resourceType": "Bundle", "type": "batch", "entry": [entry]})
    assert batch.status_code == 200, batch.text
    assert batch.json()["entry"][0]["response"]["status"].startswith("405")
    [still] = [e for e in trail(world) if e["id"] == recorded["id"]]
    assert still == recorded
