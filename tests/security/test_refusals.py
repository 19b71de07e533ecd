"""Every route, bundle entry and operation refuses a request without an acceptable token (401 with
`WWW-Authenticate: Bearer error=...` and an OperationOutcome) and one whose token lacks the scope
(403), and nothing is changed by what it refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.access.consents import privacy_consent
from tests.api.test_crud import INS, patient
from tests.hl7v2.conftest import fixture
from tests.security.tokens import bearer, server_token, system_token, wrong_tokens
from tests.server_process import ServerProcess

FHIR = "application/fhir+json"


@dataclass
class Call:
    method: str
    path: str
    body: bytes | None = None
    content_type: str = FHIR


@pytest.fixture(scope="module")
def existing(server: ServerProcess) -> dict[str, Any]:
    unique = uuid.uuid4().hex[:12]
    with server.client(headers={"Content-Type": FHIR}) as client:
        created = client.post("/Patient", json=patient(unique)).json()
    return created


def calls(existing: dict[str, Any]) -> dict[str, Call]:
    pid = existing["id"]
    identifier = f"identifier={INS}|{existing['identifier'][0]['value']}"
    body = json.dumps({**existing, "gender": "other"}).encode()
    new = json.dumps(patient(uuid.uuid4().hex[:12])).encode()
    patch = json.dumps([{"op": "replace", "path": "/gender", "value": "other"}]).encode()
    batch = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "POST", "url": "Patient"}, "resource": patient(uuid.uuid4().hex[:12])}]}).encode()
    transaction = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": f"Patient/{pid}"}}]}).encode()
    return {
        "read": Call("GET", f"/fhir/Patient/{pid}"),
        "vread": Call("GET", f"/fhir/Patient/{pid}/_history/1"),
        "instance history": Call("GET", f"/fhir/Patient/{pid}/_history"),
        "type history": Call("GET", "/fhir/Patient/_history"),
        "system history": Call("GET", "/fhir/_history"),
        "search": Call("GET", f"/fhir/Patient?{identifier}"),
        "POST _search": Call("POST", "/fhir/Patient/_search", identifier.encode(), "application/x-www-form-urlencoded"),
        "system search": Call("GET", "/fhir?_type=Patient"),
        "compartment search": Call("GET", f"/fhir/Patient/{pid}/Condition"),
        "whole compartment": Call("GET", f"/fhir/Patient/{pid}/*"),
        "create": Call("POST", "/fhir/Patient", new),
        "raw Binary create": Call("POST", "/fhir/Binary", b"%PDF-1.4 hello", "application/pdf"),
        "update": Call("PUT", f"/fhir/Patient/{pid}", body),
        "conditional update": Call("PUT", f"/fhir/Patient?{identifier}", body),
        "patch": Call("PATCH", f"/fhir/Patient/{pid}", patch, "application/json-patch+json"),
        "conditional patch": Call("PATCH", f"/fhir/Patient?{identifier}", patch, "application/json-patch+json"),
        "delete": Call("DELETE", f"/fhir/Patient/{pid}"),
        "conditional delete": Call("DELETE", f"/fhir/Patient?{identifier}"),
        "batch": Call("POST", "/fhir", batch),
        "transaction": Call("POST", "/fhir", transaction),
        "$validate": Call("POST", "/fhir/Patient/$validate", new),
        "instance $validate": Call("POST", f"/fhir/Patient/{pid}/$validate", body),
        "$advance-directives": Call("GET", f"/fhir/Patient/{pid}/$advance-directives"),
        "AuditEvent search": Call("GET", f"/fhir/AuditEvent?patient=Patient/{pid}"),
        "AuditEvent create": Call("POST", "/fhir/AuditEvent", json.dumps({
            "resourceType": "AuditEvent", "type": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                                                   "code": "110110"},
            "recorded": "2026-12-05T10:00:00Z", "agent": [{"requestor": True, "who": {"display": "test"}}],
            "source": {"observer": {"display": "test"}}}).encode()),
        "$import": Call("POST", "/fhir/$import", new, "application/fhir+ndjson"),
        "ingest CDA": Call("POST", "/ingest/cda", fixture("cda_imaging_report.xml"), "application/hl7-cda+xml"),
        "ingest HL7 v2": Call("POST", "/ingest/hl7v2", fixture("adt_a28.hl7"), "x-application/hl7-v2+er7"),
        "ingest CDA dry run": Call("POST", "/ingest/cda?_dryRun=true", fixture("cda_imaging_report.xml"),
                                   "application/hl7-cda+xml"),
        "Bundle $validate": Call("POST", "/fhir/Bundle/$validate", batch),
        "$everything": Call("GET", f"/fhir/Patient/{pid}/$everything"),
        "$export": Call("GET", "/fhir/$export"),
        "Patient $export": Call("GET", "/fhir/Patient/$export"),
        "export status": Call("GET", "/fhir/$export-status/x"),
        "$connected-apps": Call("GET", f"/fhir/Patient/{pid}/$connected-apps"),
        "$disconnect-app": Call("POST", f"/fhir/Patient/{pid}/$disconnect-app?consent=x", b""),
        "metrics": Call("GET", "/metrics"),
        "unknown path": Call("GET", "/fhir/Patient/x/y/z"),
    }


NAMES = list(calls({"id": "x", "identifier": [{"value": "x"}]}))


def send(server: ServerProcess, call: Call, headers: dict[str, str]) -> httpx.Response:
    return httpx.request(call.method, f"{server.root_url}{call.path}", content=call.body, timeout=60,
                         headers={"Content-Type": call.content_type, "Accept": FHIR, **headers})


@pytest.fixture
def unchanged(server: ServerProcess, existing: dict[str, Any]) -> Iterator[None]:
    """The store's newest change and the existing patient are the same after the test as before."""

    def state() -> tuple[Any, ...]:
        newest = server.get(f"{server.base_url}/_history", params={"_count": 1}).json()["entry"][0]
        current = server.get(f"{server.base_url}/Patient/{existing['id']}").json()
        return newest["fullUrl"], newest["resource"]["meta"], current["meta"]["versionId"], current.get("gender")

    before = state()
    yield
    assert state() == before, "a refused request changed the store"


def assert_unauthorized(response: httpx.Response, name: str) -> None:
    assert response.status_code == 401, f"{name}: {response.status_code} {response.text[:300]}"
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, challenge
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "login"


@pytest.mark.parametrize("name", NAMES)
def test_without_a_token_every_route_answers_401(server: ServerProcess, existing: dict[str, Any], unchanged: None,
                                                 name: str) -> None:
    assert_unauthorized(send(server, calls(existing)[name], {}), name)
    assert_unauthorized(send(server, calls(existing)[name], {"Authorization": "Basic dXNlcjpwYXNz"}), name)


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_token_answers_401_on_every_route(server: ServerProcess, existing: dict[str, Any], unchanged: None,
                                                  name: str) -> None:
    for why, token in wrong_tokens(server).items():
        response = send(server, calls(existing)[name], bearer(token))
        assert_unauthorized(response, f"{name} with a token {why}")


# Intake has its own refusal test below; a bulk export needs its Prefer header before anything else
# (tests/export checks its scopes), and a status asks of a job that is the caller's or none.
NOT_BY_SCOPE = ("unknown path", "ingest CDA", "ingest HL7 v2", "ingest CDA dry run", "$export", "Patient $export",
                "export status")


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NOT_BY_SCOPE])
def test_a_token_lacking_the_scope_answers_403(server: ServerProcess, existing: dict[str, Any], unchanged: None,
                                               name: str) -> None:
    # Everything on Observation, nothing on Patient, Binary or across every type.
    token = system_token(server, "system/Observation.cruds")
    response = send(server, calls(existing)[name], bearer(token))
    if name == "batch":
        assert response.status_code == 200, response.text
        [entry] = response.json()["entry"]
        assert entry["response"]["status"] == "403"
        assert entry["response"]["outcome"]["issue"][0]["code"] == "forbidden"
        return
    if name == "$everything":
        # The record as the token's scopes reach it: Observations only, none of them here, no Patient.
        assert response.status_code == 200, response.text
        assert {e["resource"]["resourceType"] for e in response.json().get("entry", [])} <= {"Observation"}
        return
    if name == "$import":
        # Lines are decided one by one, like batch entries: the line is refused, nothing stored.
        assert response.status_code == 200, response.text
        assert [i["code"] for i in response.json()["issue"][1:]] == ["forbidden"], response.text
        return
    assert response.status_code == 403, f"{name}: {response.status_code} {response.text[:300]}"
    assert response.json()["issue"][0]["code"] == "forbidden"


@pytest.mark.parametrize("name", ["ingest CDA", "ingest HL7 v2", "ingest CDA dry run"])
def test_intake_takes_documents_from_systems_with_write_scopes_only(server: ServerProcess, existing: dict[str, Any],
                                                                    unchanged: None, name: str) -> None:
    practitioner = server_token(server.data_dir, server.base_url, "practitioner", idnatps="810001234567", profession="10")
    reader = system_token(server, "system/*.rs")
    for token in (practitioner, reader):
        response = send(server, calls(existing)[name], bearer(token))
        assert response.status_code == 403, response.text
        assert response.json()["issue"][0]["code"] == "forbidden"


def test_a_transaction_with_one_forbidden_entry_fails_whole(server: ServerProcess, unique: str) -> None:
    token = system_token(server, "system/Observation.cruds")
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                   "identifier": [{"system": "urn:test:obs", "value": unique}]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Observation"}, "resource": observation},
        {"request": {"method": "POST", "url": "Patient"}, "resource": patient(unique)}]}
    response = server.post(server.base_url, json=bundle, headers={**bearer(token), "Content-Type": FHIR})
    assert response.status_code == 403, response.text
    assert "Bundle.entry[1]" in response.json()["issue"][0]["diagnostics"]
    found = server.get(f"{server.base_url}/Observation", params={"identifier": f"urn:test:obs|{unique}"}).json()
    assert found["total"] == 0


def test_batch_entries_are_authorised_one_by_one(server: ServerProcess, unique: str) -> None:
    token = system_token(server, "system/Observation.cruds")
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                   "identifier": [{"system": "urn:test:obs", "value": unique}]}
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "POST", "url": "Observation"}, "resource": observation},
        {"request": {"method": "POST", "url": "Patient"}, "resource": patient(unique)},
        {"request": {"method": "GET", "url": f"Patient?identifier={INS}|1{unique}"}},
        {"request": {"method": "GET", "url": f"Observation?identifier=urn:test:obs|{unique}"}}]}
    response = server.post(server.base_url, json=bundle, headers={**bearer(token), "Content-Type": FHIR})
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "403", "403", "200 OK"]
    assert response.json()["entry"][3]["resource"]["total"] == 1
    patients = server.get(f"{server.base_url}/Patient", params={"identifier": f"{INS}|1{unique}"}).json()
    assert patients["total"] == 0


def test_the_right_scope_is_enough(server: ServerProcess, existing: dict[str, Any]) -> None:
    token = system_token(server, "system/Patient.rs")
    assert server.get(f"{server.base_url}/Patient/{existing['id']}", headers=bearer(token)).status_code == 200
    # Issue 12: the patient's authorisation comes first.
    assert server.post(f"{server.base_url}/Consent", json=privacy_consent(existing["id"], "permit", "810001234567")).status_code == 201
    v1 = server_token(server.data_dir, server.base_url, "practitioner", scope="user/Patient.read",
                      idnatps="810001234567", profession="10")
    assert server.get(f"{server.base_url}/Patient", params={"_id": existing["id"]}, headers=bearer(v1)).json()["total"] == 1


def test_discovery_and_the_token_endpoint_need_no_token(server: ServerProcess) -> None:
    for path in ("/fhir/metadata", "/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration",
                 "/auth/jwks"):
        response = httpx.get(f"{server.root_url}{path}", timeout=30)
        assert response.status_code == 200, path
    refused = httpx.post(f"{server.root_url}/auth/token", data={"grant_type": "client_credentials"}, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_capability_statement_and_smart_configuration_describe_the_token_endpoint(server: ServerProcess) -> None:
    smart = httpx.get(f"{server.base_url}/.well-known/smart-configuration", timeout=30).json()
    assert smart == httpx.get(f"{server.root_url}/.well-known/smart-configuration", timeout=30).json()
    assert smart["token_endpoint"] == f"{server.root_url}/auth/token"
    # "none": the catalogue's public apps (issue 19), which prove themselves with PKCE.
    assert smart["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "none"]
    assert set(smart["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    # Refresh tokens exist since issue 19 (DECISIONS: advertised as permission-offline).
    assert {"permission-v2", "permission-offline"} <= set(smart["capabilities"])
    security = httpx.get(f"{server.base_url}/metadata", timeout=30).json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    [uris] = security["extension"]
    assert uris["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert {"url": "token", "valueUri": smart["token_endpoint"]} in uris["extension"]
    keys = httpx.get(smart["jwks_uri"], timeout=30).json()["keys"]
    assert [k["alg"] for k in keys] == ["ES384"] and all("d" not in k for k in keys)



def test_intake_content_the_systems_scopes_do_not_cover_is_refused_whole(server: ServerProcess, unique: str) -> None:
    # May write observations, not the Patient an ADT message is about.
    token = system_token(server, "system/Observation.cruds")
    tag = unique[:8]
    message = fixture("adt_a28.hl7").replace(b"IPP0", f"IPP{tag}-0".encode())
    response = server.post(f"{server.root_url}/ingest/hl7v2", content=message,
                           headers={**bearer(token), "Content-Type": "x-application/hl7-v2+er7"})
    assert response.status_code == 403, response.content
    assert b"MSA|AR|" in response.content and b"ERR|" in response.content
    found = server.get(f"{server.base_url}/Patient", params={"identifier": f"urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0099"})
    assert found.json()["total"] == 0
    letter = (Path(__file__).parent.parent / "cda" / "fixtures" / "ldl_ses_discharge_letter.xml").read_bytes()
    cda = server.post(f"{server.root_url}/ingest/cda", content=letter,
                      headers={**bearer(token), "Content-Type": "application/hl7-cda+xml"})
    assert cda.status_code == 403 and cda.json()["issue"][0]["code"] == "forbidden"
