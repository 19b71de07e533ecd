"""Rate limits from outside, on the guarded server (tests/hardening/conftest.py): 429 with
Retry-After and an OperationOutcome once a budget is spent, each refusal an AuditEvent, budgets of
different callers and addresses independent, one budget for the server's 4 workers."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from ipaddress import IPv4Address
from typing import Any

import httpx

from fhir_server.security.token_service import ASSERTION_TYPE
from tests.hardening.conftest import ADDRESS_BUDGET, CLIENT_BUDGET, TOKEN_FAILURES
from fhir_server.timefmt import now_instant
from tests.server_process import ServerProcess, server_token

# Loopback addresses the requests are sent from (the whole of 127.0.0.0/8 is this machine's), each
# by one test only: real peer addresses, which need no proxy to be believed.
_ADDRESSES = (str(IPv4Address("127.0.1.1") + n) for n in itertools.count())


def _address() -> str:
    return next(_ADDRESSES)


def _practitioner(server: ServerProcess) -> dict[str, str]:
    idnatps = "8" + str(uuid.uuid4().int)[:10].rjust(10, "1") + "0"
    token = server_token(server.data_dir, server.base_url, kind="practitioner", idnatps=idnatps)
    return {"Authorization": f"Bearer {token}"}


def _from(address: str) -> httpx.Client:
    """A client whose connections leave from `address`; a new connection for each request, so the
    kernel hands requests to any of the server's workers."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30,
                        headers={"Connection": "close"})


def _get(server: ServerProcess, address: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with _from(address) as client:
        return client.get(f"{server.base_url}/Patient/{uuid.uuid4().hex}", headers=headers)


def _throttled(response: httpx.Response, at_most: int) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= at_most
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "throttled"


def _refusals_audited(server: ServerProcess, since: str, address: str) -> list[dict[str, Any]]:
    found = server.get(f"{server.base_url}/AuditEvent", params={"date": f"ge{since}", "_count": "1000"}, timeout=30)
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json().get("entry", []) if e["search"]["mode"] == "match"]
    return [e for e in events if "HTTP 429" in e.get("outcomeDesc", "")
            and any(a.get("network", {}).get("address") == address for a in e["agent"])]


def test_a_callers_budget_is_one_for_all_workers_and_its_own(guarded: ServerProcess) -> None:
    since = now_instant()
    address = _address()
    first, second = _practitioner(guarded), _practitioner(guarded)
    answers = [_get(guarded, address, first).status_code for _ in range(CLIENT_BUDGET)]
    assert 429 not in answers and set(answers) <= {403, 404}, answers
    refused = _get(guarded, address, first)
    _throttled(refused, 3600)
    assert _get(guarded, address, second).status_code != 429  # another caller, the same address
    events = _refusals_audited(guarded, since, address)
    assert len(events) == 1 and events[0]["outcome"] == "4", events


def test_an_address_budget_counts_unauthenticated_requests(guarded: ServerProcess) -> None:
    since = now_instant()
    address = _address()
    answers = [_get(guarded, address).status_code for _ in range(ADDRESS_BUDGET)]
    assert set(answers) == {401}, answers
    _throttled(_get(guarded, address), 3600)
    _throttled(_get(guarded, address, _practitioner(guarded)), 3600)  # a token does not lift it
    assert _get(guarded, _address()).status_code == 401  # another address
    assert len(_refusals_audited(guarded, since, address)) == 2


def _token_request(server: ServerProcess, address: str, client: str) -> httpx.Response:
    """A request whose assertion claims `client` but is signed by nobody's key."""
    header = "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9"  # {"alg":"ES384","typ":"JWT"}
    claims = base64.urlsafe_b64encode(json.dumps({"iss": client, "sub": client}).encode()).rstrip(b"=").decode()
    with _from(address) as client:
        return client.post(f"{server.root_url}/auth/token", data={
            "grant_type": "client_credentials", "scope": "system/*.rs", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": f"{header}.{claims}.c2lnbmF0dXJl"})


def test_token_failures_are_limited_per_client_and_per_address(guarded: ServerProcess) -> None:
    since = now_instant()
    client, address = str(uuid.uuid4()), _address()
    for _ in range(TOKEN_FAILURES):
        assert _token_request(guarded, address, client).status_code == 401
    refused = _token_request(guarded, address, client)
    _throttled(refused, 3600)
    # The client's budget holds from any address, the address's for any client.
    _throttled(_token_request(guarded, _address(), client), 3600)
    _throttled(_token_request(guarded, address, str(uuid.uuid4())), 3600)
    # Another client from another address has its own.
    assert _token_request(guarded, _address(), str(uuid.uuid4())).status_code == 401
    assert len(_refusals_audited(guarded, since, address)) == 2
