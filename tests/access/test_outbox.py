"""The outbox: each committed write's event reaches the after-commit hook after commit, in commit
order, with the patient it belongs to; an event waits in the store while its consumer is down,
across a restart; a rolled-back transaction leaves none."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.access.conftest import HEADERS, HOOKS, HookedServer
from tests.api.test_store_lifecycle import store_url
from tests.server_process import ServerProcess


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _wait_for(path: Path, rid: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(path)
        if any(e["rid"] == rid for e in events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"no event for {rid} within {timeout}s: {_events(path)}")


def _mine(events: list[dict[str, Any]], rids: set[str]) -> list[dict[str, Any]]:
    """The events of the resources a test wrote (the server is shared)."""
    return [e for e in events if e["rid"] in rids]


def _patient(family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}]}


def test_events_follow_commits_in_order_with_their_patient(hooked_server: HookedServer) -> None:
    client, log = hooked_server.client, hooked_server.events
    patient = client.post("/Patient", json=_patient("Ordre")).json()["id"]
    observation = client.post("/Observation", json={
        "resourceType": "Observation", "status": "final", "code": {"text": "poids"},
        "subject": {"reference": f"Patient/{patient}"}}).json()["id"]
    assert client.put(f"/Patient/{patient}", json={**_patient("Ordre"), "id": patient, "gender": "female"}).status_code == 200
    assert client.delete(f"/Observation/{observation}").status_code == 204
    organization = client.post("/Organization", json={"resourceType": "Organization", "name": "CH"}).json()["id"]
    rids = {f"Patient/{patient}", f"Observation/{observation}", f"Organization/{organization}"}
    events = _mine(_wait_for(log, f"Organization/{organization}"), rids)
    assert [(e["method"], e["rid"], e["vid"], e["pat"]) for e in events] == [
        ("POST", f"Patient/{patient}", 1, patient),
        ("POST", f"Observation/{observation}", 1, patient),
        ("PUT", f"Patient/{patient}", 2, patient),
        ("DELETE", f"Observation/{observation}", 2, patient),
        ("POST", f"Organization/{organization}", 1, None),
    ]
    assert [e["_id"] for e in events] == sorted(e["_id"] for e in events)


def test_a_rolled_back_transaction_leaves_no_event(hooked_server: HookedServer) -> None:
    client, log = hooked_server.client, hooked_server.events
    existing = client.post("/Patient", json=_patient("Avant")).json()["id"]
    before = len(_wait_for(log, f"Patient/{existing}"))
    failing = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:8b7f0c2e-1111-4c1e-9a55-0c1f3f5b2d01", "resource": _patient("Annulé"),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**_patient("Avant"), "id": existing},
         "request": {"method": "PUT", "url": f"Patient/{existing}", "ifMatch": 'W/"7"'}},
    ]}
    assert client.post("", json=failing).status_code == 412
    after = client.post("/Patient", json=_patient("Après")).json()["id"]
    # Only this test writes to the shared server meanwhile: nothing between its two patients.
    events = _wait_for(log, f"Patient/{after}")
    assert [e["rid"] for e in events[before - 1:]] == [f"Patient/{existing}", f"Patient/{after}"]


def test_events_wait_for_their_consumer_across_a_restart(tmp_path: Path) -> None:
    events, down = tmp_path / "events.jsonl", tmp_path / "down"
    env = {"FHIR_HOOKS": HOOKS, "TEST_OUTBOX_FILE": str(events), "TEST_OUTBOX_REFUSE": str(down)}
    down.touch()
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        first = server.post(f"{server.base_url}/Patient", json=_patient("Un"), headers=HEADERS).json()["id"]
        second = server.post(f"{server.base_url}/Patient", json=_patient("Deux"), headers=HEADERS).json()["id"]
        time.sleep(1.2)  # more than one dispatch round: the consumer refused them
        assert _events(events) == []
    finally:
        server.stop()
    down.unlink()
    server.start()
    try:
        assert [e["rid"] for e in _wait_for(events, f"Patient/{second}")] == [f"Patient/{first}", f"Patient/{second}"]
    finally:
        server.stop()


def test_two_processes_on_one_store_deliver_each_event_once(tmp_path: Path) -> None:
    events, down = tmp_path / "events.jsonl", tmp_path / "down"
    # Slow deliveries of a backlog: both processes find it pending at their next rounds.
    env = {"FHIR_HOOKS": HOOKS, "TEST_OUTBOX_FILE": str(events), "TEST_OUTBOX_REFUSE": str(down),
           "TEST_OUTBOX_DELAY": "0.2"}
    down.touch()
    first = ServerProcess(tmp_path / "data", env=env).start()
    try:
        second = ServerProcess(tmp_path / "data", env={**env, "MONGODB_URL": store_url(tmp_path / "data")}).start()
        try:
            written = []
            for index in range(10):
                server = first if index % 2 else second
                response = server.post(f"{server.base_url}/Patient", json=_patient(f"P{index}"), headers=HEADERS)
                written.append(f"Patient/{response.json()['id']}")
            down.unlink()
            _wait_for(events, written[-1])
            time.sleep(1.5)  # another round of both dispatchers: a second delivery would show by now
            assert [e["rid"] for e in _events(events)] == written
        finally:
            second.stop()
    finally:
        first.stop()
