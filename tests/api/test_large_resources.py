"""Resources of more than 1 MB of JSON are stored compressed and read back whole; one that cannot
fit a store document even compressed is refused with 413, not a store error."""

from __future__ import annotations

import base64
import os

import httpx


def _bundle(entries: int, unique: str) -> dict:
    patients = [{"resource": {"resourceType": "Patient", "id": f"p{i}", "name": [{"family": f"Family {i} {unique}"}],
                              "address": [{"line": [f"{i} rue de la République"], "city": "Lyon"}]}}
                for i in range(entries)]
    return {"resourceType": "Bundle", "id": f"big-{unique}", "type": "collection", "entry": patients}


def test_a_large_resource_is_stored_and_read_back_whole(fhir: httpx.Client, unique: str) -> None:
    bundle = _bundle(20_000, unique)  # about 3 MB of JSON
    assert fhir.put(f"/Bundle/{bundle['id']}", json=bundle).status_code == 201
    read = fhir.get(f"/Bundle/{bundle['id']}").json()
    assert read["entry"] == bundle["entry"]
    assert fhir.get(f"/Bundle/{bundle['id']}/_history/1").json()["entry"] == bundle["entry"]
    found = fhir.get("/Bundle", params={"_id": bundle["id"], "type": "collection"}).json()
    assert [e["resource"]["entry"][-1] for e in found["entry"]] == [bundle["entry"][-1]]


def test_a_resource_too_large_for_the_store_is_refused(fhir: httpx.Client, unique: str) -> None:
    # Random bytes do not compress: 14 MB of them stay over the 12 MB a compressed body may take.
    noise = base64.b64encode(os.urandom(14 * 2**20)).decode("ascii")
    resource = {"resourceType": "Basic", "id": f"huge-{unique}", "code": {"text": "noise"},
                "extension": [{"url": "http://example.org/noise", "valueString": noise}]}
    response = fhir.put(f"/Basic/{resource['id']}", json=resource)
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"
    assert fhir.get(f"/Basic/{resource['id']}").status_code == 404
