"""Two server processes on one embedded store: exactly one delivers at a time (each notification
once while both live), and when the one delivering is killed with `kill -9`, the other takes the
delivery lease over within seconds and delivers what was pending and what follows, to rest-hook
endpoints and to a websocket client bound through the surviving process alike."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from websockets.sync.client import ClientConnection, connect

from fhir_server.storage.embedded import EmbeddedStore
from tests.access.conftest import HEADERS
from tests.server_process import ServerProcess
from tests.subscriptions.receiver import Receiver, subscription
from tests.subscriptions.test_delivery import FAST_RETRIES

# The delivery lease lasts 10 s (fhir_server.subscriptions.delivery): a takeover within it and a round.
TAKEOVER_SECONDS = 15.0


def _post(server: ServerProcess, patient: str, text: str) -> str:
    response = httpx.post(f"{server.base_url}/Observation", headers={**HEADERS, **server.headers}, json={
        "resourceType": "Observation", "status": "final", "code": {"text": text},
        "subject": {"reference": f"Patient/{patient}"}})
    assert response.status_code == 201, response.text
    return f"Observation/{response.json()['id']}/1"


def _pings(socket: ClientConnection, subscription_id: str, count: int) -> int:
    """The pings received until `count` came or none came for 2 s (more than `count` would show)."""
    received = 0
    try:
        while True:
            assert socket.recv(timeout=TAKEOVER_SECONDS if received < count else 2.0) == f"ping {subscription_id}"
            received += 1
    except TimeoutError:
        return received


def _resources(receiver: Receiver) -> list[str]:
    return [n.event.rsplit("|", 1)[1] for n in receiver.received()]


def test_one_process_delivers_and_the_other_takes_over_when_it_dies(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # The store is the test's, so killing either server leaves it serving the other.
    store = EmbeddedStore(data.resolve())
    url = store.start()
    receiver = Receiver().start()
    env = {**FAST_RETRIES, "MONGODB_URL": url}
    first = ServerProcess(data, env=env, own_group=True).start()
    second: ServerProcess | None = None
    try:
        patient = httpx.post(f"{first.base_url}/Patient", headers={**HEADERS, **first.headers},
                             json={"resourceType": "Patient", "name": [{"family": "Deux"}]}).json()["id"]
        created = httpx.post(f"{first.base_url}/Subscription", headers={**HEADERS, **first.headers},
                             json=subscription(f"Observation?patient=Patient/{patient}", receiver.url))
        assert created.status_code == 201, created.text
        socket_subscription = httpx.post(f"{first.base_url}/Subscription", headers={**HEADERS, **first.headers},
                                         json=subscription(f"Observation?patient=Patient/{patient}",
                                                           channel="websocket")).json()["id"]
        written = [_post(first, patient, "seul")]
        # Delivered by the first process, alone until now: it holds the lease.
        receiver.wait_for(lambda n: len(n) == 1)
        second = ServerProcess(data, env=env).start()
        with connect(f"ws://127.0.0.1:{second.port}/fhir/websocket", open_timeout=10) as socket:
            socket.send(f"bind {socket_subscription}")
            assert socket.recv(timeout=10) == f"bound {socket_subscription}"
            written += [_post(server, patient, str(i)) for i, server in enumerate([first, second] * 5)]
            receiver.wait_for(lambda n: len(n) >= len(written))
            time.sleep(1.5)  # more rounds of both workers: a second delivery would show by now
            assert _resources(receiver) == written
            assert first.process is not None
            os.killpg(first.process.pid, signal.SIGKILL)
            first.process.wait()
            first.process = None
            killed = time.monotonic()
            after = [_post(second, patient, f"apres {i}") for i in range(3)]
            receiver.wait_for(lambda n: len(n) >= len(written) + len(after), timeout=TAKEOVER_SECONDS)
            takeover = time.monotonic() - killed
            assert _resources(receiver) == written + after
            # Bound after the first notification: one ping for each of the others, none twice.
            assert _pings(socket, socket_subscription, len(written) - 1 + len(after)) == len(written) - 1 + len(after)
        print(f"delivery taken over {takeover:.1f}s after the holder's kill -9")
    finally:
        if second is not None:
            second.stop()
        first.stop()
        receiver.stop()
        store.stop()
