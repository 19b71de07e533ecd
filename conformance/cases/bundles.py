"""FHIR R4 batch and transaction (http.html#transaction)."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from conformance.cases.rest import R4, patient
from conformance.registry import case
from conformance.session import Failed, Session, body_json, expect


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _remember_locations(s: Session, bundle: dict[str, Any]) -> list[str]:
    locations = []
    for entry in bundle.get("entry", []):
        location = entry.get("response", {}).get("location", "")
        parts = location.split("/_history")[0].split("/")
        if len(parts) >= 2 and entry.get("response", {}).get("status", "").startswith("201"):
            s.remember(parts[-2], parts[-1])
        locations.append("/".join(parts[-2:]) if len(parts) >= 2 else "")
    return locations


@case("FHIR-transaction-01", "Transaction: references to urn:uuid entries are rewritten to the new ids",
      ["FHIR", "transaction"], R4, "http.html#transaction",
      "If the server assigns a new id to any resource in the bundle as part of the processing rules above, it SHALL "
      "also update any references to that resource in the same bundle as they are processed.")
def transaction_references(s: Session) -> None:
    s.require_system_interaction("transaction")
    patient_urn, observation_urn = _urn(), _urn()
    observation = {"resourceType": "Observation", "status": "final", "meta": s.tag(),
                   "identifier": [{"system": s.system, "value": s.unique("observation")}],
                   "code": {"coding": [{"system": s.system, "code": "conformance-test"}]},
                   "subject": {"reference": patient_urn}, "valueString": "conformance test"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": observation_urn, "resource": observation, "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": patient_urn, "resource": {**patient(s), "meta": s.tag()}, "request": {"method": "POST", "url": "Patient"}}]}
    response = s.request("POST", "", resource=bundle)
    expect(response, {200}, "POST [base] with a transaction of an Observation and its Patient")
    answer = body_json(response)
    locations = _remember_locations(s, answer)
    if answer.get("type") != "transaction-response" or len(answer.get("entry", [])) != 2:
        raise Failed(f"the answer is a {answer.get('type')!r} Bundle of {len(answer.get('entry', []))} entries, "
                     "expected a transaction-response with one entry per request entry")
    if not locations[0].startswith("Observation/") or not locations[1].startswith("Patient/"):
        raise Failed(f"the response entries are not in the request's order: {locations}")
    stored = body_json(s.get(locations[0]))
    if stored.get("subject", {}).get("reference") != locations[1]:
        raise Failed(f"the Observation's subject is {stored.get('subject')}, expected a reference to {locations[1]}")


@case("FHIR-transaction-02", "Transaction: links in url elements are replaced too", ["FHIR", "transaction"], R4,
      "http.html#transaction",
      "Servers SHALL replace all matching links in the bundle, whether they are found in the resource ids, "
      "resource references, elements of type uri, url, oid, uuid, and <a href=\"\" & <img src=\"\" in the narrative.")
def transaction_url_links(s: Session) -> None:
    s.require_system_interaction("transaction")
    s.require_interaction("Binary", "create")
    binary_urn, patient_urn = _urn(), _urn()
    # A PNG signature and header: servers may check that bytes match the declared contentType.
    photo = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient_urn, "resource": {**patient(s), "meta": s.tag(),
                                              "photo": [{"contentType": "image/png", "url": binary_urn}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": binary_urn, "resource": {"resourceType": "Binary", "contentType": "image/png", "meta": s.tag(),
                                             "data": base64.b64encode(photo).decode()},
         "request": {"method": "POST", "url": "Binary"}}]}
    response = s.request("POST", "", resource=bundle)
    expect(response, {200}, "POST [base] with a Patient whose photo.url is the urn:uuid of a Binary entry")
    locations = _remember_locations(s, body_json(response))
    stored = body_json(s.get(locations[0]))
    url = (stored.get("photo") or [{}])[0].get("url", "")
    if binary_urn in url or not url.rstrip("/").endswith(locations[1]):
        raise Failed(f"Patient.photo.url (type url) is {url!r}: the link to the Binary entry was not replaced by "
                     f"{locations[1]}")


@case("FHIR-transaction-03", "Transaction: all or nothing", ["FHIR", "transaction"], R4, "http.html#transaction",
      "For a transaction, servers SHALL either accept all actions and return a 200 OK, along with a response "
      "bundle (see below), or reject all resources and return an HTTP 400 or 500 type response.")
def transaction_atomic(s: Session) -> None:
    s.require_system_interaction("transaction")
    good = patient(s)
    identifier = good["identifier"][0]
    unmatched = f"Patient?identifier={s.system}|{s.unique('nobody')}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": _urn(), "resource": {**good, "meta": s.tag()}, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": _urn(), "resource": {"resourceType": "Observation", "status": "final", "meta": s.tag(),
                                         "code": {"coding": [{"system": s.system, "code": "conformance-test"}]},
                                         "subject": {"reference": unmatched}},
         "request": {"method": "POST", "url": "Observation"}}]}
    response = s.request("POST", "", resource=bundle)
    if response.status_code == 200:
        _remember_locations(s, body_json(response))
        raise Failed(f"a transaction whose Observation refers to {unmatched} (no match) was accepted")
    if not 400 <= response.status_code < 600:
        raise Failed(f"the failed transaction answered {response.status_code}, not a 4xx or 5xx")
    found = body_json(s.get("Patient", params={"identifier": f"{identifier['system']}|{identifier['value']}"}))
    if found.get("entry"):
        for entry in found["entry"]:
            s.remember("Patient", entry["resource"]["id"])
        raise Failed("the transaction failed but its Patient entry was stored")


@case("FHIR-batch-01", "Batch: one response entry per request entry, in order, each with its own outcome",
      ["FHIR", "batch"], R4, "http.html#transaction-response",
      "For a batch, or a successful transaction, the response the server SHALL return a Bundle with type set to "
      "batch-response or transaction-response that contains one entry for each entry in the request, in the same "
      "order, with the outcome of processing the entry.")
def batch(s: Session) -> None:
    s.require_system_interaction("batch")
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{s.fresh_id()}"}},
        {"resource": {**patient(s), "meta": s.tag()}, "request": {"method": "POST", "url": "Patient"}}]}
    response = s.request("POST", "", resource=bundle)
    expect(response, {200}, "POST [base] with a batch of a read of an unknown id and a create")
    answer = body_json(response)
    _remember_locations(s, answer)
    statuses = [e.get("response", {}).get("status", "") for e in answer.get("entry", [])]
    if answer.get("type") != "batch-response" or len(statuses) != 2:
        raise Failed(f"expected a batch-response of 2 entries, got a {answer.get('type')!r} of {len(statuses)}")
    if not statuses[0].startswith("404") or not statuses[1].startswith("201"):
        raise Failed(f"entry statuses are {statuses}: expected 404 for the unknown read, then 201 for the create")


@case("FHIR-transaction-04", "Transaction: a conditional reference (search URI) is resolved to its single match",
      ["FHIR", "transaction", "conditional"], R4, "http.html#trules",
      "When processing transactions, servers SHALL: check all references for search URIs; For search URIs, use the "
      "search to locate matching resources; [...] if there is a single match, the server replaces the search URI "
      "with a reference to the matching resource")
def transaction_conditional_reference(s: Session) -> None:
    s.require_system_interaction("transaction")
    s.require_interaction("Patient", "create")
    target = s.create(patient(s))
    identifier = target["identifier"][0]
    observation = {"resourceType": "Observation", "status": "final", "meta": s.tag(),
                   "code": {"coding": [{"system": s.system, "code": "conformance-test"}]},
                   "subject": {"reference": f"Patient?identifier={identifier['system']}|{identifier['value']}"},
                   "valueString": "conformance test"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": _urn(), "resource": observation, "request": {"method": "POST", "url": "Observation"}}]}
    response = s.request("POST", "", resource=bundle)
    expect(response, {200}, "a transaction whose Observation refers to Patient?identifier=... (one match)")
    location = _remember_locations(s, body_json(response))[0]
    stored = body_json(s.get(location))
    if stored.get("subject", {}).get("reference") != f"Patient/{target['id']}":
        raise Failed(f"the search URI became {stored.get('subject')}, expected Patient/{target['id']}")


@case("FHIR-transaction-05", "Transaction: two entries on the same resource make it fail", ["FHIR", "transaction"],
      R4, "http.html#trules",
      "If any resource identities (including resolved identities from conditional update/delete) overlap in steps "
      "1-3, then the transaction SHALL fail.")
def transaction_overlap(s: Session) -> None:
    s.require_system_interaction("transaction")
    s.require_interaction("Patient", "create")
    target = s.create(patient(s))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"{s.options.base_url}/Patient/{target['id']}", "resource": {**target, "gender": "male"},
         "request": {"method": "PUT", "url": f"Patient/{target['id']}"}},
        {"fullUrl": f"{s.options.base_url}/Patient/{target['id']}", "resource": {**target, "gender": "female"},
         "request": {"method": "PUT", "url": f"Patient/{target['id']}"}}]}
    response = s.request("POST", "", resource=bundle)
    if response.status_code == 200:
        raise Failed("a transaction updating the same Patient twice was accepted")
    if not 400 <= response.status_code < 600:
        raise Failed(f"the overlapping transaction answered {response.status_code}, expected a 4xx or 5xx")
    if body_json(s.get(f"Patient/{target['id']}")).get("gender") != target.get("gender"):
        raise Failed("the failed transaction changed the Patient anyway")
