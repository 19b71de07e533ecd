"""FHIR strings forbid characters below U+0020 except tab, CR and LF (R4 datatypes.html#string):
a write carrying one anywhere is refused with the path of the element."""

from __future__ import annotations

import json

import httpx
import pytest

INS = "urn:oid:1.2.250.1.213.1.4.10"


def _paths(response: httpx.Response) -> list[str]:
    return [e for i in response.json()["issue"] for e in i.get("expression", [])]


CASES = [
    ("name", {"name": [{"family": "DU\u0000RAND"}]}, "Patient.name[0].family"),
    ("bell-in-given", {"name": [{"given": ["Ma\u0007rie"]}]}, "Patient.name[0].given[0]"),
    ("uri", {"identifier": [{"system": "urn:oid:1.2\u001f", "value": "x"}]}, "Patient.identifier[0].system"),
    ("extension", {"extension": [{"url": "https://example.org/x", "valueString": "a\u0001b"}]}, "Patient.extension[0].valueString"),
    ("primitive-extension", {"_gender": {"extension": [{"url": "https://example.org/x", "valueString": "\u001b[0m"}]}},
     "Patient.gender.extension[0].valueString"),
    ("narrative", {"text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">a\u0000</div>"}}, "Patient.text.div"),
    ("contained", {"contained": [{"resourceType": "Organization", "id": "o", "name": "CH\u0000"}]}, "Patient.contained[0].name"),
]


@pytest.mark.parametrize(("extra", "path"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_control_character_is_refused_with_its_path(fhir: httpx.Client, unique: str, extra: dict, path: str) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": INS, "value": f"5{unique}"}], **extra}
    response = fhir.post("/Patient", json=patient)
    assert response.status_code == 400, response.text
    assert path in _paths(response)
    assert fhir.get("/Patient", params={"identifier": f"{INS}|5{unique}"}).json()["total"] == 0


def test_tab_cr_and_lf_are_allowed(fhir: httpx.Client, unique: str) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": INS, "value": f"6{unique}"}],
               "name": [{"family": "DURAND", "text": "Marie\tDURAND\r\nnée MARTIN"}]}
    response = fhir.post("/Patient", json=patient)
    assert response.status_code == 201, response.text
    assert response.json()["name"][0]["text"] == "Marie\tDURAND\r\nnée MARTIN"


def test_patch_and_transaction_are_held_to_the_same_rule(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json={"resourceType": "Patient", "identifier": [{"system": INS, "value": f"4{unique}"}]}).json()
    ops = [{"op": "add", "path": "/name", "value": [{"family": "A\u0000"}]}]
    patched = fhir.patch(f"/Patient/{created['id']}", content=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 400, patched.text
    assert "Patient.name[0].family" in _paths(patched)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient", "name": [{"family": "B\u0000"}]}}]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 400, response.text
    assert "Bundle.entry[0].resource.name[0].family" in _paths(response)
