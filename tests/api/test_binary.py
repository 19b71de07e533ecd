"""Binary: raw bytes in and out, FHIR JSON on request, large payloads in GridFS."""

from __future__ import annotations

import base64
import os

import httpx


def test_raw_binary_roundtrip(fhir: httpx.Client) -> None:
    payload = b"%PDF-1.4\n" + os.urandom(2048)
    created = fhir.post("/Binary", content=payload, headers={"Content-Type": "application/pdf"})
    assert created.status_code == 201
    bid = created.json()["id"]
    assert created.json()["contentType"] == "application/pdf"
    raw = fhir.get(f"/Binary/{bid}", headers={"Accept": "application/pdf"})
    assert raw.status_code == 200 and raw.content == payload
    assert raw.headers["content-type"].startswith("application/pdf")
    resource = fhir.get(f"/Binary/{bid}", headers={"Accept": "application/fhir+json"}).json()
    assert resource["resourceType"] == "Binary" and base64.b64decode(resource["data"]) == payload


def test_fhir_json_binary(fhir: httpx.Client) -> None:
    data = base64.b64encode(b"hello").decode()
    created = fhir.post("/Binary", json={"resourceType": "Binary", "contentType": "text/plain", "data": data}).json()
    assert fhir.get(f"/Binary/{created['id']}", headers={"Accept": "*/*"}).content == b"hello"


def test_large_binary_goes_beyond_the_document_limit(fhir: httpx.Client) -> None:
    payload = os.urandom(20 * 1024 * 1024)  # over MongoDB's 16 MB document limit
    created = fhir.post("/Binary", content=payload, headers={"Content-Type": "application/octet-stream"})
    assert created.status_code == 201
    raw = fhir.get(f"/Binary/{created.json()['id']}", headers={"Accept": "application/octet-stream"})
    assert raw.content == payload


def test_invalid_base64_is_refused(fhir: httpx.Client) -> None:
    response = fhir.post("/Binary", json={"resourceType": "Binary", "contentType": "text/plain", "data": "***"})
    assert response.status_code == 400


def test_every_version_keeps_its_bytes(fhir: httpx.Client) -> None:
    first, second = os.urandom(1000), os.urandom(1000)
    bid = fhir.post("/Binary", content=first, headers={"Content-Type": "application/octet-stream"}).json()["id"]
    assert fhir.put(f"/Binary/{bid}", content=second, headers={"Content-Type": "application/octet-stream"}).status_code == 200
    raw = {"Accept": "application/octet-stream"}
    assert fhir.get(f"/Binary/{bid}", headers=raw).content == second
    assert fhir.get(f"/Binary/{bid}/_history/1", headers=raw).content == first
    assert fhir.get(f"/Binary/{bid}/_history/2", headers=raw).content == second
