"""The request body limit (FHIR_MAX_BODY_BYTES): a body over it is refused with 413 whether its
length is announced or it arrives chunked, and an announced length over it is refused before
any of the body is read. A body of exactly the limit is read.

Every request carries the platform's token, so the limit is what refuses these bodies, not the
authentication in front of it; a caller without a token is refused before any body is read."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fhir_server.config import Settings
from tests.raw_http import RawResponse, chunked, send

# The server under test runs with the same environment as this process.
LIMIT = Settings().max_body_bytes
PIECE = 1024 * 1024
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def filler(size: int) -> Iterator[bytes]:
    """`size` bytes that are not JSON: read whole, such a body is a 400, never a 413."""
    while size > 0:
        yield b"x" * min(PIECE, size)
        size -= PIECE


def refused_as_too_large(response: RawResponse) -> None:
    assert response.status == 413, response.body[:500]
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "too-costly"
    assert str(LIMIT) in outcome["issue"][0]["diagnostics"]


def test_chunked_body_over_the_limit_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    headers = {**FHIR_JSON, **server.headers, "Transfer-Encoding": "chunked"}
    response = send(f"{server.base_url}/Patient", "POST", headers, chunked(filler(LIMIT + 1)), timeout=60)
    refused_as_too_large(response)


def test_chunked_body_of_exactly_the_limit_is_read(server) -> None:  # type: ignore[no-untyped-def]
    headers = {**FHIR_JSON, **server.headers, "Transfer-Encoding": "chunked"}
    response = send(f"{server.base_url}/Patient", "POST", headers, chunked(filler(LIMIT)), timeout=60)
    assert response.status == 400, response.body[:500]
    assert "not valid JSON" in response.json()["issue"][0]["diagnostics"]


def test_announced_length_over_the_limit_is_refused_before_the_body_is_read(server) -> None:  # type: ignore[no-untyped-def]
    """Only a few bytes of the announced body are ever sent: a server that waited for the rest
    would not answer within the timeout."""
    headers = {**FHIR_JSON, **server.headers, "Content-Length": str(LIMIT + 1)}
    started = time.monotonic()
    response = send(f"{server.base_url}/Patient", "POST", headers, [b'{"resourceType":'], timeout=10)
    refused_as_too_large(response)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("path", ["/Patient", "/Patient/any-id"])
def test_huge_announced_length_is_refused_at_once(server, path: str) -> None:  # type: ignore[no-untyped-def]
    method = "POST" if path == "/Patient" else "PUT"
    headers = {**FHIR_JSON, **server.headers, "Content-Length": str(10**15)}
    refused_as_too_large(send(f"{server.base_url}{path}", method, headers, [b"{"], timeout=10))


def test_announced_length_of_exactly_the_limit_is_read(server) -> None:  # type: ignore[no-untyped-def]
    headers = {**FHIR_JSON, **server.headers, "Content-Length": str(LIMIT)}
    response = send(f"{server.base_url}/Patient", "POST", headers, filler(LIMIT), timeout=60)
    assert response.status == 400, response.body[:500]
    assert "not valid JSON" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("endpoint", ["/ingest/cda", "/ingest/hl7v2"])
def test_ingest_endpoints_hold_the_same_limit(server, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    media = "application/hl7-cda+xml" if endpoint == "/ingest/cda" else "x-application/hl7-v2+er7"
    headers = {"Content-Type": media, **server.headers, "Transfer-Encoding": "chunked"}
    response = send(f"{server.root_url}{endpoint}", "POST", headers, chunked(filler(LIMIT + 1)), timeout=60)
    refused_as_too_large(response)


@pytest.mark.parametrize("size", [LIMIT + 1, 10**15])
def test_a_caller_without_a_token_is_refused_before_the_body_is_read(server, size: int) -> None:  # type: ignore[no-untyped-def]
    """Authentication answers first, whatever length is announced: only a few bytes are sent, so a
    server that waited for the body would not answer within the timeout."""
    headers = {**FHIR_JSON, "Content-Length": str(size)}
    started = time.monotonic()
    response = send(f"{server.base_url}/Patient", "POST", headers, [b'{"resourceType":'], timeout=10)
    assert response.status == 401, response.body[:500]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert time.monotonic() - started < 10
