"""Transaction fullUrl rewriting follows R4 http.html#trules: only references, uri-like elements and
narrative links are rewritten; strings that merely equal a fullUrl are kept exactly."""

from __future__ import annotations

import uuid

import httpx

INS = "urn:oid:1.2.250.1.213.1.4.10"
SOURCE_URI = "https://example.org/fhir/StructureDefinition/source-entry"
COMMENT = "https://example.org/fhir/StructureDefinition/comment"


def test_only_uri_like_elements_and_references_are_rewritten(fhir: httpx.Client, unique: str) -> None:
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    observation = {
        "resourceType": "Observation",
        "text": {"status": "generated",
                 "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{patient_url}">{patient_url}</a></div>'},
        "contained": [{"resourceType": "Patient", "id": "p1",
                       "identifier": [{"system": "urn:ietf:rfc:3986", "value": patient_url}],
                       "extension": [{"url": SOURCE_URI, "valueUri": patient_url}]}],
        "extension": [{"url": SOURCE_URI, "valueUri": patient_url},
                      {"url": COMMENT, "valueString": patient_url},
                      {"url": COMMENT, "valueReference": {"reference": patient_url}}],
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": patient_url}],
        "status": "final",
        "_status": {"extension": [{"url": SOURCE_URI, "valueUri": patient_url}]},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": patient_url},
        "subject": {"reference": patient_url, "display": patient_url},
        "valueString": patient_url,
        "note": [{"text": patient_url}],
        "component": [{"code": {"text": "c"}, "valueString": patient_url,
                       "extension": [{"url": SOURCE_URI, "valueUri": patient_url}]}],
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient_url, "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "identifier": [{"system": INS, "value": f"7{unique}"}]}},
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "Observation"}, "resource": observation},
    ]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    patient_ref = response.json()["entry"][0]["response"]["location"].split("/_history")[0]
    observation_ref = response.json()["entry"][1]["response"]["location"].split("/_history")[0]
    stored = fhir.get(f"/{observation_ref}").json()

    # Reference.reference, uri elements (extension valueUri, also on a primitive, in a backbone
    # element and in a contained resource) and narrative links name the created Patient.
    assert stored["subject"]["reference"] == patient_ref
    assert stored["extension"][0]["valueUri"] == patient_ref
    assert stored["extension"][2]["valueReference"]["reference"] == patient_ref
    assert stored["_status"]["extension"][0]["valueUri"] == patient_ref
    assert stored["component"][0]["extension"][0]["valueUri"] == patient_ref
    assert stored["contained"][0]["extension"][0]["valueUri"] == patient_ref
    assert f'href="{patient_ref}"' in stored["text"]["div"]
    # Strings are kept exactly: Identifier.value, extension valueString, the note (markdown), the
    # value[x] string, display and text, the narrative's text.
    assert stored["identifier"][0]["value"] == patient_url
    assert stored["contained"][0]["identifier"][0]["value"] == patient_url
    assert stored["extension"][1]["valueString"] == patient_url
    assert stored["note"][0]["text"] == patient_url
    assert stored["valueString"] == patient_url
    assert stored["component"][0]["valueString"] == patient_url
    assert stored["subject"]["display"] == patient_url
    assert stored["code"]["text"] == patient_url
    assert f">{patient_url}</a>" in stored["text"]["div"]


def test_identifier_system_is_a_uri_and_is_rewritten(fhir: httpx.Client, unique: str) -> None:
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient_url, "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "identifier": [{"system": INS, "value": f"8{unique}"}]}},
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "identifier": [{"system": patient_url, "value": patient_url}]}},
    ]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    first, second = (e["response"]["location"].split("/_history")[0] for e in response.json()["entry"])
    identifier = fhir.get(f"/{second}").json()["identifier"][0]
    assert identifier == {"system": first, "value": patient_url}
