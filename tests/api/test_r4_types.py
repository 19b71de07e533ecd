"""The R4 types without an official example (the five Substance* definitions) get every interaction
the other types have: create, read, vread, update, patch, history, search, delete, in a transaction."""

from __future__ import annotations

import httpx
import pytest

WITHOUT_EXAMPLES = {
    "SubstanceNucleicAcid": {"numberOfSubunits": 1},
    "SubstancePolymer": {"modification": ["sulfated"]},
    "SubstanceProtein": {"numberOfSubunits": 2},
    "SubstanceReferenceInformation": {"comment": "reference"},
    "SubstanceSourceMaterial": {"organismName": "Digitalis purpurea"},
}
PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.mark.parametrize("resource_type", sorted(WITHOUT_EXAMPLES))
def test_every_interaction(fhir: httpx.Client, unique: str, resource_type: str) -> None:
    body = {"resourceType": resource_type, **WITHOUT_EXAMPLES[resource_type]}
    created = fhir.post(f"/{resource_type}", json=body)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert fhir.get(f"/{resource_type}/{rid}").json()["meta"]["versionId"] == "1"
    updated = fhir.put(f"/{resource_type}/{rid}", json={**body, "id": rid, "language": "fr"})
    assert updated.status_code == 200
    patched = fhir.patch(f"/{resource_type}/{rid}", headers=PATCH,
                         json=[{"op": "replace", "path": "/language", "value": "en"}])
    assert patched.status_code == 200 and patched.json()["language"] == "en"
    assert fhir.get(f"/{resource_type}/{rid}/_history/2").json()["language"] == "fr"
    history = fhir.get(f"/{resource_type}/{rid}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "2", "1"]
    found = fhir.get(f"/{resource_type}", params={"_id": rid, "_lastUpdated": "gt2000"},
                     headers={"Prefer": "handling=strict"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [rid]
    assert fhir.delete(f"/{resource_type}/{rid}").status_code == 204
    assert fhir.get(f"/{resource_type}/{rid}").status_code == 410
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{unique}-0", "resource": body, "request": {"method": "POST", "url": resource_type}},
        {"resource": {**body, "id": f"t-{unique}"}, "request": {"method": "PUT", "url": f"{resource_type}/t-{unique}"}},
    ]}
    response = fhir.post("", json=transaction)
    assert response.status_code == 200, response.text
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created", "201 Created"]


def test_parameters_is_not_stored(fhir: httpx.Client) -> None:
    response = fhir.post("/Parameters", json={"resourceType": "Parameters"})
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-supported"
