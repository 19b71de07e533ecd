"""Subscriptions against the outbound policy, from outside: with the policy unset a rest-hook to
a loopback address is refused at creation and at update (422) and nothing connects to the local
listener; a name that resolves to loopback only when the server connects puts the Subscription in
`error` without connecting; a receiver the policy allows cannot redirect the server elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.hardening.listener import Listener, ipv6_loopback
from tests.subscriptions.receiver import subscription


@pytest.fixture
def listener() -> Iterator[Listener]:
    started = Listener().start()
    yield started
    started.stop()


def _patient(fhir: httpx.Client, unique: str) -> str:
    response = fhir.post("/Patient", json={"resourceType": "Patient", "name": [{"family": unique}]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Subscription.channel.endpoint"]
    assert what in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_loopback_endpoints_are_refused_at_creation(guarded_fhir: httpx.Client, listener: Listener, scheme: str,
                                                    unique: str) -> None:
    hosts = ["127.0.0.1", "localhost"]
    v6 = Listener(host="::1").start() if ipv6_loopback() else None
    try:
        urls = [listener.url(scheme=scheme, host=h) for h in hosts] + ([v6.url(scheme=scheme)] if v6 else [])
        for url in urls:
            criteria = f"Patient?family={unique}"
            _refused(guarded_fhir.post("/Subscription", json=subscription(criteria, url)), "loopback")
        _patient(guarded_fhir, unique)  # an event the refused subscriptions would have been told of
        time.sleep(1.5)
        assert listener.connections == 0
        assert v6 is None or v6.connections == 0
    finally:
        if v6 is not None:
            v6.stop()


def test_an_update_to_a_refused_endpoint_is_refused(guarded_fhir: httpx.Client, unique: str) -> None:
    created = guarded_fhir.post("/Subscription", json=subscription(f"Patient?family={unique}",
                                                                   "https://receiver.example/hook"))
    assert created.status_code == 201, created.text
    sub = created.json()
    for endpoint, what in (("https://169.254.169.254/latest/meta-data/", "link-local"),
                           ("https://10.1.2.3/hook", "private"), ("http://receiver.example/hook", "https")):
        changed = {**sub, "channel": {**sub["channel"], "endpoint": endpoint}}
        _refused(guarded_fhir.put(f"/Subscription/{sub['id']}", json=changed), what)
    off = guarded_fhir.put(f"/Subscription/{sub['id']}", json={**sub, "status": "off"})
    assert off.status_code == 200, off.text


def test_a_name_resolving_to_loopback_at_delivery_is_an_error_without_connecting(
        guarded_fhir: httpx.Client, listener: Listener, unique: str) -> None:
    # `127.1` is a name to the URL check and 127.0.0.1 to the resolver, as a public name whose DNS
    # answer changed to a private address would be.
    endpoint = listener.url(scheme="https", host="127.1")
    created = guarded_fhir.post("/Subscription", json=subscription(f"Patient?family={unique}", endpoint))
    assert created.status_code == 201, created.text
    _patient(guarded_fhir, unique)
    deadline = time.monotonic() + 30
    while (current := guarded_fhir.get(f"/Subscription/{created.json()['id']}").json())["status"] != "error":
        assert time.monotonic() < deadline, current
        time.sleep(0.2)
    assert "outbound policy" in current["error"] and "loopback" in current["error"]
    assert listener.connections == 0


def test_a_redirect_from_an_allowed_receiver_is_not_followed(fhir: httpx.Client, listener: Listener,
                                                             unique: str) -> None:
    """The session's server allows 127.0.0.1/32 and ::1/128 (tests/server_process.py); 127.0.0.2
    is loopback too, but not allowed: the receiver sends the server there."""
    elsewhere = Listener(host="127.0.0.2").start()
    try:
        listener.status = 307
        listener.headers = {"Location": elsewhere.url()}
        created = fhir.post("/Subscription", json=subscription(f"Patient?family={unique}", listener.url()))
        assert created.status_code == 201, created.text
        _patient(fhir, unique)
        # The 307 is a failed delivery: it is tried again (after FHIR_SUBSCRIPTION_RETRY_MS), never elsewhere.
        deadline = time.monotonic() + 30
        while listener.connections < 2:
            assert time.monotonic() < deadline, "the delivery was not tried again"
            time.sleep(0.1)
        assert elsewhere.connections == 0
        fhir.put(f"/Subscription/{created.json()['id']}", json={**created.json(), "status": "off"})
    finally:
        elsewhere.stop()
