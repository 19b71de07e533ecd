"""Rest-hook subscriptions over HTTP on the session's server: what is accepted, what is notified
(matching creates and updates only, in commit order, with the channel's headers and the payload
asked for), and what a Subscription's owner alone may see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server_process import ServerProcess
from tests.subscriptions.receiver import Receiver, subscription


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def _patient(fhir: httpx.Client, family: str) -> str:
    response = fhir.post("/Patient", json={"resourceType": "Patient", "name": [{"family": family}]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _observation(patient: str, text: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": text},
            "subject": {"reference": f"Patient/{patient}"}}


def test_matching_creates_and_updates_are_notified_in_order_with_headers(fhir: httpx.Client, receiver: Receiver,
                                                                         unique: str) -> None:
    patient, other = _patient(fhir, f"Abonne{unique}"), _patient(fhir, f"Autre{unique}")
    created = fhir.post("/Subscription", json=subscription(
        f"Observation?patient=Patient/{patient}", receiver.url, headers=["Authorization: Bearer s3cret"]))
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["status"] == "active"
    first = fhir.post("/Observation", json=_observation(patient, "poids")).json()["id"]
    fhir.post("/Observation", json=_observation(other, "taille"))  # another record: not notified
    updated = fhir.put(f"/Observation/{first}", json={**_observation(patient, "poids"), "id": first,
                                                       "status": "amended"})
    assert updated.status_code == 200, updated.text
    second = fhir.post("/Observation", json=_observation(patient, "pouls")).json()["id"]
    got = receiver.wait_for(lambda n: len(n) >= 3)
    assert [(n.method, n.path, n.body) for n in got] == [("POST", "/hook", None)] * 3
    assert [n.event.rsplit("|", 1)[1] for n in got] == [f"Observation/{first}/1", f"Observation/{first}/2",
                                                         f"Observation/{second}/1"]
    assert {n.headers["authorization"] for n in got} == {"Bearer s3cret"}
    assert {n.headers["x-subscription-id"] for n in got} == {sub["id"]}


def test_payload_puts_the_resource_to_the_endpoint_as_a_service_base(fhir: httpx.Client, receiver: Receiver,
                                                                     unique: str) -> None:
    patient = _patient(fhir, f"Charge{unique}")
    response = fhir.post("/Subscription", json=subscription(f"Observation?patient=Patient/{patient}&status=final",
                                                            receiver.url, payload="application/fhir+json"))
    assert response.status_code == 201, response.text
    final = fhir.post("/Observation", json=_observation(patient, "glycemie")).json()["id"]
    fhir.post("/Observation", json={**_observation(patient, "brouillon"), "status": "preliminary"})
    got = receiver.wait_for(lambda n: len(n) >= 1)
    assert [(n.method, n.path) for n in got] == [("PUT", f"/hook/Observation/{final}")]
    assert got[0].body is not None and got[0].body["id"] == final and got[0].body["code"]["text"] == "glycemie"
    assert got[0].headers["content-type"] == "application/fhir+json"


@pytest.mark.parametrize(("change", "status", "path"), [
    ({"criteria": "Observation?nonsense=1"}, 400, None),
    ({"criteria": "NoSuchType?patient=x"}, 400, "Subscription.criteria"),
    ({"criteria": "Observation?_sort=date"}, 400, "Subscription.criteria"),
    ({"channel": {"type": "email", "endpoint": "mailto:a@b.fr"}}, 422, "Subscription.channel.type"),
    ({"channel": {"type": "rest-hook", "endpoint": "ftp://example.org/x"}}, 422, "Subscription.channel.endpoint"),
    ({"channel": {"type": "rest-hook"}}, 422, "Subscription.channel.endpoint"),
    ({"channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/x", "payload": "application/fhir+xml"}}, 422,
     "Subscription.channel.payload"),
    ({"channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/x", "header": ["no colon"]}}, 422,
     "Subscription.channel.header"),
])
def test_what_cannot_be_delivered_is_refused(fhir: httpx.Client, change: dict[str, Any], status: int,
                                             path: str | None) -> None:
    sent = {**subscription("Observation?status=final", "http://127.0.0.1:9/x"), **change}
    response = fhir.post("/Subscription", json=sent)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    if path is not None:
        assert path in str(outcome)


def test_a_subscription_switched_off_is_stored_as_sent(fhir: httpx.Client) -> None:
    """R4's examples are stored `off` (their channels may be e-mail or SMS): not held to the channel rules."""
    sent = {**subscription("Observation?status=final"), "status": "off", "channel": {"type": "email",
                                                                                   "endpoint": "mailto:a@b.fr"}}
    response = fhir.post("/Subscription", json=sent)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "off"


def test_only_its_owner_reads_or_changes_a_subscription(server: ServerProcess, fhir: httpx.Client, receiver: Receiver,
                                                        unique: str) -> None:
    from tests.access.world import open_world

    world = open_world(server)
    world.practitioner("owner")
    world.practitioner("other")
    created = world.request("owner", "POST", "/Subscription",
                            json=subscription("Observation?status=final", receiver.url, headers=["X-Key: k"]))
    assert created.status_code == 201, created.text
    sub = created.json()
    assert world.get("owner", f"/Subscription/{sub['id']}").status_code == 200
    assert world.get("other", f"/Subscription/{sub['id']}").status_code == 404
    assert sub["id"] not in str(world.get("other", "/Subscription?status=active").json())
    stolen = world.request("other", "PUT", f"/Subscription/{sub['id']}",
                           json={**sub, "channel": {**sub["channel"], "endpoint": "http://127.0.0.1:9/elsewhere"}})
    # As for any resource the caller cannot see: its id cannot be written.
    assert stolen.status_code == 409, stolen.text
    assert world.request("other", "DELETE", f"/Subscription/{sub['id']}").status_code in (204, 404)
    assert fhir.get(f"/Subscription/{sub['id']}").json()["channel"]["endpoint"] == receiver.url


def test_criteria_naming_no_patient_match_every_record(fhir: httpx.Client, receiver: Receiver, unique: str) -> None:
    code = {"coding": [{"system": "urn:oid:1.2.250.1.999.13.2", "code": unique}]}
    response = fhir.post("/Subscription", json=subscription(f"Observation?code=urn:oid:1.2.250.1.999.13.2|{unique}",
                                                            receiver.url))
    assert response.status_code == 201, response.text
    written = []
    for family in ("Un", "Deux"):
        patient = _patient(fhir, f"{family}{unique}")
        fhir.post("/Observation", json=_observation(patient, "autre code"))
        created = fhir.post("/Observation", json={**_observation(patient, "ce code"), "code": code})
        written.append(f"Observation/{created.json()['id']}/1")
    got = receiver.wait_for(lambda n: len(n) >= 2)
    assert [n.event.rsplit("|", 1)[1] for n in got] == written
