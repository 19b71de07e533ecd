"""A subscriber is notified only of what its caller may read (issue 12's rules, checked at each
delivery through the repository's search as the caller who set the subscription up)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.access.world import World, new_finess, open_world
from tests.server_process import ServerProcess
from tests.subscriptions.receiver import Receiver, subscription


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    started = {name: Receiver().start() for name in ("authorised", "depositor", "stranger")}
    yield started
    for receiver in started.values():
        receiver.stop()


@pytest.fixture
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("authorised")
    world.practitioner("stranger")
    world.system("depositor", new_finess())
    world.patient_id, world.ins = world.patient()
    world.consent(world.patient_id, "permit", world.professionals["authorised"])
    yield world
    world.http.close()


def test_masked_documents_reach_only_those_who_may_read_them(world: World, receivers: dict[str, Receiver]) -> None:
    for name, receiver in receivers.items():
        response = world.request(name, "POST", "/Subscription", json=subscription(
            f"DocumentReference?patient=Patient/{world.patient_id}", receiver.url, payload="application/fhir+json"))
        assert response.status_code == 201, response.text
    plain = world.deposit("plain", "depositor")
    masked = world.deposit("masked", "depositor", labels=("MASQUE_PS",))
    last = world.deposit("last", "depositor")

    def documents(receiver: Receiver) -> list[str]:
        return [n.path.rsplit("/", 1)[1] for n in receiver.received()]

    # The depositing organisation sees its masked document: every deposit reaches it, in order.
    receivers["depositor"].wait_for(lambda n: len(n) >= 3)
    assert documents(receivers["depositor"]) == [plain.id, masked.id, last.id]
    # The authorised professional, not its author, never hears of the masked one.
    receivers["authorised"].wait_for(lambda n: any(last.id in x.path for x in n))
    assert documents(receivers["authorised"]) == [plain.id, last.id]
    # A professional the patient never authorised hears of nothing in that record.
    assert documents(receivers["stranger"]) == []
