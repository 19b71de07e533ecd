"""History records each version with the interaction that made it: a PATCH is a PATCH (R4
Bundle.entry.request.method), whether sent alone or inside a transaction."""

from __future__ import annotations

import base64
import json

import httpx

INS = "urn:oid:1.2.250.1.213.1.4.10"
PATCH = {"Content-Type": "application/json-patch+json"}


def test_history_records_patch_as_patch(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json={"resourceType": "Patient", "identifier": [{"system": INS, "value": f"2{unique}"}],
                                          "gender": "female"})
    assert created.status_code == 201, created.text
    patient = created.json()
    ops = [{"op": "replace", "path": "/gender", "value": "other"}]
    assert fhir.patch(f"/Patient/{patient['id']}", content=json.dumps(ops), headers=PATCH).status_code == 200
    current = fhir.get(f"/Patient/{patient['id']}").json()
    assert fhir.put(f"/Patient/{patient['id']}", json={**current, "gender": "unknown"}).status_code == 200
    document = json.dumps([{"op": "replace", "path": "/gender", "value": "female"}]).encode()
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": base64.b64encode(document).decode()}
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"request": {"method": "PATCH", "url": f"Patient/{patient['id']}"}, "resource": binary}]}
    assert fhir.post("", json=bundle).status_code == 200
    history = fhir.get(f"/Patient/{patient['id']}/_history").json()
    methods = {e["resource"]["meta"]["versionId"]: e["request"]["method"] for e in history["entry"]}
    assert methods == {"1": "POST", "2": "PATCH", "3": "PUT", "4": "PATCH"}
    assert fhir.get(f"/Patient/{patient['id']}/_history/4").json()["gender"] == "female"
