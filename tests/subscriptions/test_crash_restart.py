"""The issue's Done-when: a rest-hook receiver started by the test gets a notification of every
document posted while the server (with its store) is killed with `kill -9` and restarted once in
the middle: none lost; a duplicate only where at-least-once allows (a notification sent but not
yet recorded as sent when the process died), recognisable by its `X-Event-Id`; first deliveries
in commit order.

The issue's 1,000 documents run in `make test-all` (SUBSCRIPTION_CRASH_DOCUMENTS=1000); `make test`
keeps 150, which still crash with deliveries pending (../shared/DECISIONS.md, time and budgets).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.access.conftest import HEADERS
from tests.server_process import ServerProcess
from tests.subscriptions.receiver import Receiver, subscription
from tests.subscriptions.test_delivery import FAST_RETRIES

DOCUMENTS = int(os.environ.get("SUBSCRIPTION_CRASH_DOCUMENTS", "150"))
SYSTEM = "urn:oid:1.2.250.1.999.13.1"


def document(patient: str, number: int) -> dict[str, object]:
    return {"resourceType": "DocumentReference", "status": "current",
            "identifier": [{"system": SYSTEM, "value": f"doc-{number}"}],
            "subject": {"reference": f"Patient/{patient}"},
            "content": [{"attachment": {"contentType": "text/plain", "url": f"http://example.org/doc-{number}"}}]}


class Poster(threading.Thread):
    """Posts the documents one after the other, each until it is acknowledged; a conditional create
    (If-None-Exist on its identifier), so a post resent after a crash never makes a second one."""

    def __init__(self, server: ServerProcess, patient: str) -> None:
        super().__init__(daemon=True)
        self.server, self.patient = server, patient
        self.acknowledged: dict[int, str] = {}

    def run(self) -> None:
        for number in range(DOCUMENTS):
            while number not in self.acknowledged:
                try:
                    response = httpx.post(f"{self.server.base_url}/DocumentReference", json=document(self.patient, number),
                                          headers={**HEADERS, **self.server.headers,
                                                   "If-None-Exist": f"identifier={SYSTEM}|doc-{number}"}, timeout=30)
                except httpx.HTTPError:
                    time.sleep(0.1)  # the server is down: again once it is back
                    continue
                if response.status_code in (200, 201):
                    self.acknowledged[number] = response.json()["id"]
                else:
                    time.sleep(0.1)


@pytest.mark.heavy
def test_every_document_is_notified_across_a_kill_9_and_a_restart(tmp_path: Path) -> None:
    # A slow endpoint until the crash: deliveries lag behind the posts, so the kill leaves many
    # pending and likely one in flight (recorded here, never acknowledged to the dead server).
    receiver = Receiver(delay=0.3).start()
    server = ServerProcess(tmp_path / "data", env=FAST_RETRIES, own_group=True).start()
    started = time.monotonic()
    try:
        with server.client(headers=HEADERS, timeout=60) as client:
            patient = client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Crash"}]}).json()["id"]
            created = client.post("/Subscription", json=subscription(f"DocumentReference?patient=Patient/{patient}",
                                                                     receiver.url))
            assert created.status_code == 201, created.text
        poster = Poster(server, patient)
        poster.start()
        while len(poster.acknowledged) < DOCUMENTS // 2:
            time.sleep(0.01)
        behind = len(poster.acknowledged) - len(receiver.received())
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        server.process = None
        receiver.delay = 0.0
        server.start(timeout=60)
        poster.join(600)
        assert len(poster.acknowledged) == DOCUMENTS
        expected = {f"DocumentReference/{i}" for i in poster.acknowledged.values()}
        got = receiver.wait_for(lambda n: {x.event.rsplit("|", 1)[1].rsplit("/", 1)[0] for x in n} >= expected,
                                timeout=300)
    finally:
        server.stop()
        receiver.stop()
    events = [n.event for n in got]
    first = list(dict.fromkeys(events))
    # One event per document: a repeat is the same notification again, never a second event.
    assert len(first) == DOCUMENTS
    assert {e.rsplit("|", 1)[1].rsplit("/", 1)[0] for e in first} == expected
    assert first == sorted(first), "first deliveries out of commit order"
    print(f"{DOCUMENTS} documents, killed with {behind} notifications pending: {len(events) - len(first)} "
          f"duplicates, {time.monotonic() - started:.1f}s")
