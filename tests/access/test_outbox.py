"""The outbox: each committed write's event reaches the after-commit hook after commit, in commit
order, with the patient it belongs to; an event waits in the store while its consumer is down,
across a restart; a rolled-back transaction leaves none."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server_process import ServerProcess

HOOKS = "tests.access.hidden_tag_hooks"
HEADERS = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


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


class Hooked:
    def __init__(self, data_dir: Path, events: Path, refuse: Path) -> None:
        self.server = ServerProcess(data_dir, env={"FHIR_HOOKS": HOOKS, "TEST_OUTBOX_FILE": str(events),
                                                   "TEST_OUTBOX_REFUSE": str(refuse)})
        self.client: httpx.Client | None = None

    def start(self) -> httpx.Client:
        self.server.start()
        self.client = httpx.Client(base_url=self.server.base_url, headers=HEADERS, timeout=60.0)
        return self.client

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop()


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    return {"data": tmp_path / "data", "events": tmp_path / "events.jsonl", "refuse": tmp_path / "consumer-down"}


@pytest.fixture
def hooked(paths: dict[str, Path]) -> Iterator[Hooked]:
    server = Hooked(paths["data"], paths["events"], paths["refuse"])
    yield server
    server.stop()


def _patient(family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}]}


def test_events_follow_commits_in_order_with_their_patient(hooked: Hooked, paths: dict[str, Path]) -> None:
    client = hooked.start()
    patient = client.post("/Patient", json=_patient("Ordre")).json()["id"]
    observation = client.post("/Observation", json={
        "resourceType": "Observation", "status": "final", "code": {"text": "poids"},
        "subject": {"reference": f"Patient/{patient}"}}).json()["id"]
    assert client.put(f"/Patient/{patient}", json={**_patient("Ordre"), "id": patient, "gender": "female"}).status_code == 200
    assert client.delete(f"/Observation/{observation}").status_code == 204
    organization = client.post("/Organization", json={"resourceType": "Organization", "name": "CH"}).json()["id"]
    events = _wait_for(paths["events"], f"Organization/{organization}")
    assert [(e["method"], e["rid"], e["vid"], e["pat"]) for e in events] == [
        ("POST", f"Patient/{patient}", 1, patient),
        ("POST", f"Observation/{observation}", 1, patient),
        ("PUT", f"Patient/{patient}", 2, patient),
        ("DELETE", f"Observation/{observation}", 2, patient),
        ("POST", f"Organization/{organization}", 1, None),
    ]
    assert [e["_id"] for e in events] == sorted(e["_id"] for e in events)


def test_a_rolled_back_transaction_leaves_no_event(hooked: Hooked, paths: dict[str, Path]) -> None:
    client = hooked.start()
    existing = client.post("/Patient", json=_patient("Avant")).json()["id"]
    _wait_for(paths["events"], f"Patient/{existing}")
    failing = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:8b7f0c2e-1111-4c1e-9a55-0c1f3f5b2d01", "resource": _patient("Annulé"),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**_patient("Avant"), "id": existing},
         "request": {"method": "PUT", "url": f"Patient/{existing}", "ifMatch": 'W/"7"'}},
    ]}
    assert client.post("", json=failing).status_code == 412
    after = client.post("/Patient", json=_patient("Après")).json()["id"]
    events = _wait_for(paths["events"], f"Patient/{after}")
    assert [e["rid"] for e in events] == [f"Patient/{existing}", f"Patient/{after}"]


def test_events_wait_for_their_consumer_across_a_restart(hooked: Hooked, paths: dict[str, Path]) -> None:
    paths["refuse"].touch()
    client = hooked.start()
    first = client.post("/Patient", json=_patient("Un")).json()["id"]
    second = client.post("/Patient", json=_patient("Deux")).json()["id"]
    time.sleep(1.5)  # more than one dispatch round: the consumer refused them
    assert _events(paths["events"]) == []
    hooked.stop()
    paths["refuse"].unlink()
    client = hooked.start()
    events = _wait_for(paths["events"], f"Patient/{second}")
    assert [e["rid"] for e in events] == [f"Patient/{first}", f"Patient/{second}"]


def test_two_processes_on_one_store_deliver_each_event_once(tmp_path: Path) -> None:
    from tests.api.test_store_lifecycle import store_url

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
                response = httpx.post(f"{server.base_url}/Patient", json=_patient(f"P{index}"), headers=HEADERS)
                written.append(f"Patient/{response.json()['id']}")
            down.unlink()
            _wait_for(events, written[-1])
            time.sleep(2.5)  # two more rounds of both dispatchers: a second delivery would show by now
            assert [e["rid"] for e in _events(events)] == written
        finally:
            second.stop()
    finally:
        first.stop()
