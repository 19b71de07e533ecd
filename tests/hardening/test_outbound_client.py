"""The outbound client against listeners of the test on loopback (the only addresses these tests
ever connect to): refusals connect nowhere, redirects are not followed, limits hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from fhir_server.outbound import OutboundClient, OutboundError, Policy, Refused
from fhir_server.security.tokens import InvalidToken, TrustedIssuer, claim_mapping
from tests.hardening.listener import Listener

LOOPBACK_V4 = "127.0.0.1/32"


@pytest.fixture
def listener() -> Iterator[Listener]:
    started = Listener().start()
    yield started
    started.stop()


def call(policy: Policy, method: str, url: str) -> object:
    async def run() -> object:
        client = OutboundClient(policy)
        try:
            return await client.request(method, url)
        finally:
            await client.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_unset_policy_connects_to_no_loopback_address(listener: Listener, scheme: str, host: str) -> None:
    with pytest.raises(Refused):
        call(Policy.parse(""), "POST", listener.url(scheme=scheme, host=host))
    assert listener.connections == 0


def test_an_allowed_receiver_is_called(listener: Listener) -> None:
    listener.body = b'{"ok": true}'
    answer = call(Policy.parse(LOOPBACK_V4), "GET", listener.url())
    assert (answer.status, answer.body) == (200, b'{"ok": true}')  # type: ignore[attr-defined]
    assert listener.connections == 1


def test_a_redirect_to_a_refused_destination_is_not_followed(listener: Listener) -> None:
    refused = Listener(host="127.0.0.2").start()
    try:
        listener.status = 307
        listener.headers = {"Location": refused.url()}
        answer = call(Policy.parse(LOOPBACK_V4), "POST", listener.url())
        assert answer.status == 307  # type: ignore[attr-defined]
        time.sleep(0.2)
        assert (listener.connections, refused.connections) == (1, 0)
        # The target itself is refused by that policy: had the redirect been followed, it would be judged anew.
        with pytest.raises(Refused):
            call(Policy.parse(LOOPBACK_V4), "POST", refused.url())
        assert refused.connections == 0
    finally:
        refused.stop()


def test_an_answer_over_the_size_limit_is_cut_short(listener: Listener) -> None:
    listener.body = b"x" * 5000
    with pytest.raises(OutboundError, match="more than 4096 bytes"):
        call(Policy.parse(LOOPBACK_V4, max_bytes=4096), "GET", listener.url())


def test_a_slow_answer_is_given_up_on_time(listener: Listener) -> None:
    listener.delay = 3.0
    started = time.monotonic()
    with pytest.raises(OutboundError):
        call(Policy.parse(LOOPBACK_V4, timeout=0.5), "GET", listener.url())
    assert time.monotonic() - started < 2.0


def test_a_trusted_issuers_jwks_url_obeys_the_policy(listener: Listener) -> None:
    async def key_with(allow: str) -> object:
        client = OutboundClient(Policy.parse(allow))
        issuer = TrustedIssuer("https://idp.example", listener.url("/jwks"), claim_mapping("pro-sante-connect"),
                               outbound=client)
        try:
            return await issuer.key("k1")
        finally:
            await client.aclose()

    with pytest.raises(InvalidToken, match="cannot be loaded"):
        asyncio.run(key_with(""))
    assert listener.connections == 0
    listener.body = b'{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", ' \
                    b'"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
    assert asyncio.run(key_with(LOOPBACK_V4)) is not None
    assert listener.connections == 1


def test_headers_a_subscriber_sets_cannot_change_the_framing(listener: Listener) -> None:
    async def run() -> object:
        client = OutboundClient(Policy.parse(LOOPBACK_V4))
        try:
            return await client.request("POST", listener.url(), content=b"{}",
                                        headers={"content-length": "999", "Host": "metadata.internal", "X-Key": "k"})
        finally:
            await client.aclose()

    assert asyncio.run(run()).status == 200  # type: ignore[attr-defined]
