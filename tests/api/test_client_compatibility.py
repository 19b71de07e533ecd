"""What off-the-shelf clients send: `_pretty`, and `If-None-Exist` as a search URL (HAPI FHIR)."""

from __future__ import annotations

import httpx

INS = "urn:oid:1.2.250.1.213.1.4.10"


def patient(unique: str) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": INS, "value": f"5{unique}"}], "gender": "male"}


def test_pretty_indents_json_and_xml(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    compact = fhir.get(f"/Patient/{created['id']}")
    assert "\n" not in compact.text
    pretty = fhir.get(f"/Patient/{created['id']}", params={"_pretty": "true"})
    assert pretty.text.startswith('{\n  "resourceType": "Patient"') and pretty.json() == compact.json()
    xml = fhir.get(f"/Patient/{created['id']}", params={"_pretty": "true", "_format": "xml"})
    assert '\n  <id value="' in xml.text and "\n    <system value=" in xml.text
    search = fhir.get("/Patient", params={"identifier": f"{INS}|5{unique}", "_pretty": "true"})
    assert search.text.startswith('{\n  "resourceType": "Bundle"')
    error = fhir.get(f"/Patient/none-{unique}", params={"_pretty": "true"})
    assert error.status_code == 404 and error.text.startswith('{\n  "resourceType": "OperationOutcome"')


def test_if_none_exist_takes_the_search_url_hapi_sends(fhir: httpx.Client, unique: str) -> None:
    header = {"If-None-Exist": f"Patient?identifier={INS}|5{unique}"}
    first = fhir.post("/Patient", json=patient(unique), headers=header)
    assert first.status_code == 201, first.text
    again = fhir.post("/Patient", json=patient(unique), headers=header)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_if_none_exist_on_another_type_is_refused(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("/Patient", json=patient(unique), headers={"If-None-Exist": f"Practitioner?identifier=5{unique}"})
    assert response.status_code == 400
    assert "names the type Practitioner" in response.json()["issue"][0]["diagnostics"]
    assert fhir.get("/Patient", params={"identifier": f"{INS}|5{unique}"}).json()["total"] == 0


def test_a_transaction_if_none_exist_takes_the_search_url(fhir: httpx.Client, unique: str) -> None:
    entry = {"resource": patient(unique),
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"Patient?identifier={INS}|5{unique}"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    first = fhir.post("/", json=bundle)
    assert first.status_code == 200 and first.json()["entry"][0]["response"]["status"].startswith("201"), first.text
    again = fhir.post("/", json=bundle)
    assert again.status_code == 200 and again.json()["entry"][0]["response"]["status"].startswith("200"), again.text
    wrong = fhir.post("/", json=bundle | {"entry": [entry | {"request": entry["request"] | {"ifNoneExist": "Observation?code=x"}}]})
    assert wrong.status_code == 400 and wrong.json()["issue"][0]["expression"] == ["Bundle.entry[0].request.ifNoneExist"]
