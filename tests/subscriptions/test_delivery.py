"""Delivery on a server of its own with short retries: an endpoint that fails is retried with
backoff, the Subscription turns `error` (saying why) and back to `active` once the endpoint takes
notifications again, with nothing lost or reordered; the websocket channel binds and pings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.access.conftest import HEADERS
from tests.server_process import ServerProcess, server_token
from tests.subscriptions.receiver import Receiver, subscription

FAST_RETRIES = {"FHIR_SUBSCRIPTION_RETRY_MS": "100", "FHIR_SUBSCRIPTION_ERROR_AFTER": "3"}


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("subscriptions") / "data", env=FAST_RETRIES).start()
    yield server
    server.stop()


@pytest.fixture
def client(own_server: ServerProcess) -> Iterator[httpx.Client]:
    with own_server.client(headers=HEADERS, timeout=60.0) as client:
        yield client


def _observation(client: httpx.Client, patient: str, text: str) -> str:
    response = client.post("/Observation", json={"resourceType": "Observation", "status": "final",
                                                 "code": {"text": text}, "subject": {"reference": f"Patient/{patient}"}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _patient(client: httpx.Client) -> str:
    return str(client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Hook"}]}).json()["id"])


def _until(client: httpx.Client, path: str, done: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resource: dict[str, Any] = client.get(path).json()
        if done(resource):
            return resource
        time.sleep(0.1)
    raise AssertionError(f"{path} did not change within {timeout}s: {client.get(path).json()}")


def test_a_failing_endpoint_turns_error_then_active_with_nothing_lost(client: httpx.Client) -> None:
    receiver = Receiver(status=503).start()
    try:
        patient = _patient(client)
        created = client.post("/Subscription", json=subscription(f"Observation?patient=Patient/{patient}",
                                                                 receiver.url))
        assert created.status_code == 201, created.text
        path = f"/Subscription/{created.json()['id']}"
        first = _observation(client, patient, "un")
        failed = _until(client, path, lambda s: s["status"] == "error")
        assert failed["error"] == f"The endpoint {receiver.url} answered HTTP 503"
        second = _observation(client, patient, "deux")
        receiver.status = 200
        got = receiver.wait_for(lambda n: len(n) >= 2)
        assert [n.event.rsplit("|", 1)[1] for n in got] == [f"Observation/{first}/1", f"Observation/{second}/1"]
        recovered = _until(client, path, lambda s: s["status"] == "active")
        assert "error" not in recovered
    finally:
        receiver.stop()


def test_an_unreachable_endpoint_holds_back_only_its_own_subscription(client: httpx.Client) -> None:
    receiver = Receiver().start()
    try:
        patient = _patient(client)
        dead = client.post("/Subscription", json=subscription(f"Observation?patient=Patient/{patient}",
                                                              "http://127.0.0.1:9/nobody"))
        live = client.post("/Subscription", json=subscription(f"Observation?patient=Patient/{patient}", receiver.url))
        assert dead.status_code == live.status_code == 201
        written = [_observation(client, patient, str(i)) for i in range(3)]
        got = receiver.wait_for(lambda n: len(n) >= 3)
        assert [n.event.rsplit("|", 1)[1] for n in got] == [f"Observation/{o}/1" for o in written]
        failed = _until(client, f"/Subscription/{dead.json()['id']}", lambda s: s["status"] == "error")
        assert "could not be reached" in failed["error"]
    finally:
        receiver.stop()


def test_websocket_clients_bind_and_are_pinged(own_server: ServerProcess, client: httpx.Client) -> None:
    statement = httpx.get(f"{own_server.base_url}/metadata").json()
    url = next(e["valueUri"] for e in statement["rest"][0]["extension"]
               if e["url"] == "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket")
    patient = _patient(client)
    created = client.post("/Subscription", json=subscription(f"Observation?patient=Patient/{patient}",
                                                             channel="websocket"))
    assert created.status_code == 201, created.text
    sub = created.json()["id"]
    with connect(url, open_timeout=10) as socket:
        socket.send("bind nobody")
        assert socket.recv(timeout=10) == "error nobody is not a websocket Subscription"
        socket.send(f"bind {sub}")
        assert socket.recv(timeout=10) == f"bound {sub}"
        _observation(client, patient, "un")
        _observation(client, _patient(client), "autre dossier")
        _observation(client, patient, "deux")
        assert [socket.recv(timeout=15), socket.recv(timeout=15)] == [f"ping {sub}"] * 2
        with pytest.raises(TimeoutError):
            socket.recv(timeout=1.5)


def test_a_disabled_clients_subscriptions_stop_being_notified(own_server: ServerProcess, client: httpx.Client,
                                                              tmp_path: Path) -> None:
    from tests.security.test_clients import clients, key_pair, register

    _, jwks, _ = key_pair(tmp_path, "RSA")
    client_id = register(own_server, jwks, "system/*.rs")
    token = server_token(own_server.data_dir, own_server.base_url, "system", client_id=client_id,
                         scope="system/Subscription.cruds system/Observation.rs")
    receiver, witness = Receiver().start(), Receiver().start()
    try:
        patient = _patient(client)
        criteria = f"Observation?patient=Patient/{patient}"
        created = httpx.post(f"{own_server.base_url}/Subscription", headers={**HEADERS, "Authorization": f"Bearer {token}"},
                             json=subscription(criteria, receiver.url))
        assert created.status_code == 201, created.text
        assert client.post("/Subscription", json=subscription(criteria, witness.url)).status_code == 201
        _observation(client, patient, "avant")
        receiver.wait_for(lambda n: len(n) == 1)
        disabled = clients(own_server, "disable", client_id)
        assert disabled.returncode == 0, disabled.stderr
        time.sleep(2.0)  # the running server reloads the registry every second
        _observation(client, patient, "apres")
        witness.wait_for(lambda n: len(n) == 2)
        time.sleep(1.0)
        assert len(receiver.received()) == 1
    finally:
        receiver.stop()
        witness.stop()


def test_a_subscription_past_its_end_is_turned_off_and_notifies_nothing(client: httpx.Client) -> None:
    receiver, witness = Receiver().start(), Receiver().start()
    try:
        patient = _patient(client)
        criteria = f"Observation?patient=Patient/{patient}"
        ended = client.post("/Subscription", json={**subscription(criteria, receiver.url),
                                                   "end": "2020-01-01T00:00:00Z"})
        assert ended.status_code == 201, ended.text
        assert client.post("/Subscription", json=subscription(criteria, witness.url)).status_code == 201
        _observation(client, patient, "un")
        witness.wait_for(lambda n: len(n) == 1)
        off = _until(client, f"/Subscription/{ended.json()['id']}", lambda s: s["status"] == "off")
        assert off["end"] == "2020-01-01T00:00:00Z"
        assert receiver.received() == []
    finally:
        receiver.stop()
        witness.stop()
