"""SMART `patient/` scopes reach only the record of the patient in context (issue 11): with patient
A's token, nothing of patient B is found, counted, included, chained through, listed in history or
read (it answers 404 like what never existed), and nothing can be written into B's record or
outside A's; what other callers see follows the record rules of issue 12."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from fhir_server.security.callers import INS_SYSTEMS
from tests.access.consents import privacy_consent
from tests.security.tokens import bearer, server_token, system_token
from tests.server_process import ServerProcess

CODES = "http://example.org/fhir-server/tests/codes"
FHIR = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


def _observation(patient: str, code: str, performer: str | None = None) -> dict[str, Any]:
    observation: dict[str, Any] = {"resourceType": "Observation", "status": "final",
                                   "subject": {"reference": f"Patient/{patient}"},
                                   "code": {"coding": [{"system": CODES, "code": code}]}}
    if performer is not None:
        observation["performer"] = [{"reference": f"Practitioner/{performer}"}]
    return observation


def _document(patient: str, code: str) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": f"Patient/{patient}"},
            "type": {"coding": [{"system": CODES, "code": code}]},
            "content": [{"attachment": {"contentType": "text/plain", "url": "http://example.org/documents/1"}}]}


def _created(client: httpx.Client, resource: dict[str, Any]) -> str:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _ids(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if "resource" in e and e["resource"]["resourceType"] != "OperationOutcome"
            and (mode is None or e.get("search", {}).get("mode") == mode)}


def _search(client: httpx.Client, path: str, params: dict[str, str]) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def records(server: ServerProcess) -> dict[str, str]:
    """Patients A (INS-NIR) and B (INS-NIA), each with an observation and a document coded `code`,
    and a practitioner who performed A's observation."""
    unique = uuid.uuid4().hex[:12]
    ids = {"code": f"scope-{unique}", "ins_a": f"1{unique}A", "ins_b": f"2{unique}B"}
    with server.client(headers=FHIR, timeout=60.0) as platform:
        for name, system in (("a", INS_SYSTEMS[0]), ("b", INS_SYSTEMS[1])):
            ids[name] = _created(platform, {"resourceType": "Patient", "name": [{"family": f"Scope{name}"}],
                                            "identifier": [{"system": system, "value": ids[f"ins_{name}"]}]})
        ids["doctor"] = _created(platform, {"resourceType": "Practitioner", "name": [{"family": f"Doc{unique}"}]})
        ids["obs_a"] = _created(platform, _observation(ids["a"], ids["code"], ids["doctor"]))
        ids["obs_b"] = _created(platform, _observation(ids["b"], ids["code"]))
        ids["doc_a"] = _created(platform, _document(ids["a"], ids["code"]))
        ids["doc_b"] = _created(platform, _document(ids["b"], ids["code"]))
    return ids


def _client(server: ServerProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={**FHIR, **bearer(token)}, timeout=60.0)


@pytest.fixture(scope="module")
def patient_a(server: ServerProcess, records: dict[str, str]) -> Any:
    with _client(server, server_token(server.data_dir, server.base_url, "patient", ins=records["ins_a"])) as client:
        yield client


def test_searches_and_totals_show_only_the_patients_own_record(patient_a: httpx.Client, records: dict[str, str]) -> None:
    code = f"{CODES}|{records['code']}"
    found = _search(patient_a, "/Observation", {"code": code, "_total": "accurate"})
    assert _ids(found) == {f"Observation/{records['obs_a']}"}
    assert found["total"] == 1
    assert _search(patient_a, "/DocumentReference", {"type": code, "_summary": "count"})["total"] == 1
    assert _ids(_search(patient_a, "/Patient", {"_id": f"{records['a']},{records['b']}"})) == {f"Patient/{records['a']}"}
    everywhere = _search(patient_a, "/", {"_type": "Observation,DocumentReference",
                                          "_id": ",".join(records[k] for k in ("obs_a", "obs_b", "doc_a", "doc_b"))})
    assert _ids(everywhere) == {f"Observation/{records['obs_a']}", f"DocumentReference/{records['doc_a']}"}


def test_includes_chains_and_has_never_reach_another_record(patient_a: httpx.Client, records: dict[str, str]) -> None:
    a, b = records["a"], records["b"]
    code = f"{CODES}|{records['code']}"
    included = _search(patient_a, "/Observation", {"code": code, "_include": "Observation:subject"})
    assert _ids(included, "include") == {f"Patient/{a}"}
    revincluded = _search(patient_a, "/Patient", {"_id": f"{a},{b}", "_revinclude": "Observation:subject"})
    assert _ids(revincluded) == {f"Patient/{a}", f"Observation/{records['obs_a']}"}
    assert _ids(_search(patient_a, "/Observation", {"subject:Patient.identifier": f"{INS_SYSTEMS[1]}|{records['ins_b']}"})) == set()
    assert _ids(_search(patient_a, "/Patient", {"_has:Observation:subject:code": code})) == {f"Patient/{a}"}
    for path in (f"/Patient/{b}/Observation", f"/Patient/{b}/*"):
        assert _ids(_search(patient_a, path, {})) == set(), path
    assert _ids(_search(patient_a, f"/Patient/{a}/*", {"_type": "Observation,DocumentReference"})) == {
        f"Observation/{records['obs_a']}", f"DocumentReference/{records['doc_a']}"}


def test_shared_reference_data_stays_readable(patient_a: httpx.Client, records: dict[str, str]) -> None:
    assert patient_a.get(f"/Practitioner/{records['doctor']}").status_code == 200
    included = _search(patient_a, "/Observation", {"_id": records["obs_a"], "_include": "Observation:performer"})
    assert _ids(included, "include") == {f"Practitioner/{records['doctor']}"}


def test_another_patients_resources_read_as_never_existing(patient_a: httpx.Client, records: dict[str, str]) -> None:
    assert patient_a.get(f"/Observation/{records['obs_a']}").status_code == 200
    for path in (f"/Observation/{records['obs_b']}", f"/Observation/{records['obs_b']}/_history/1",
                 f"/Patient/{records['b']}", f"/DocumentReference/{records['doc_b']}"):
        assert patient_a.get(path).status_code == 404, path
    history = patient_a.get(f"/Observation/{records['obs_b']}/_history")
    assert history.status_code == 404 or _ids(history.json()) == set()
    for path in ("/_history", "/Observation/_history"):
        listed = _ids(_search(patient_a, path, {"_count": "1000"}))
        assert f"Observation/{records['obs_a']}" in listed, path
        assert f"Observation/{records['obs_b']}" not in listed and f"Patient/{records['b']}" not in listed, path


def test_writes_go_only_into_the_patients_own_record(server: ServerProcess, patient_a: httpx.Client,
                                                     records: dict[str, str]) -> None:
    code = f"written-{uuid.uuid4().hex[:8]}"
    refused = patient_a.post("/Observation", json=_observation(records["b"], code))
    assert refused.status_code == 403, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert patient_a.post("/Practitioner", json={"resourceType": "Practitioner"}).status_code == 403
    own = patient_a.post("/Observation", json=_observation(records["a"], code))
    assert own.status_code == 201, own.text
    moved = {**own.json(), "subject": {"reference": f"Patient/{records['b']}"}}
    assert patient_a.put(f"/Observation/{moved['id']}", json=moved).status_code == 403
    with server.client(headers=FHIR, timeout=60.0) as platform:
        stored = _search(platform, "/Observation", {"code": f"{CODES}|{code}"})
        assert _ids(stored) == {f"Observation/{own.json()['id']}"}
        assert stored["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{records['a']}"


def test_a_patient_the_server_does_not_know_sees_no_record(server: ServerProcess, records: dict[str, str]) -> None:
    token = server_token(server.data_dir, server.base_url, "patient", ins=f"9{uuid.uuid4().hex[:12]}")
    with _client(server, token) as stranger:
        assert _search(stranger, "/Observation", {"code": f"{CODES}|{records['code']}", "_total": "accurate"})["total"] == 0
        assert stranger.get(f"/Observation/{records['obs_a']}").status_code == 404


def test_a_launch_context_patient_bounds_patient_scopes(server: ServerProcess, records: dict[str, str]) -> None:
    idnatps = f"8{uuid.uuid4().int % 10**11:011d}"
    with server.client(headers=FHIR, timeout=60.0) as platform:
        _created(platform, privacy_consent(records["b"], "permit", idnatps))
    token = server_token(server.data_dir, server.base_url, "practitioner", scope="patient/*.rs",
                         idnatps=idnatps, profession="10", patient=records["b"])
    with _client(server, token) as app:
        found = _search(app, "/Observation", {"code": f"{CODES}|{records['code']}"})
        assert _ids(found) == {f"Observation/{records['obs_b']}"}


def test_other_callers_see_what_the_record_rules_let_them(server: ServerProcess, records: dict[str, str]) -> None:
    """Beyond patient/ scopes, issue 12's rules hold: a professional sees the records that authorised
    them, a hospital system what its organisation deposited, the platform everything."""
    idnatps = f"8{uuid.uuid4().int % 10**11:011d}"
    with server.client(headers=FHIR, timeout=60.0) as platform:
        _created(platform, privacy_consent(records["a"], "permit", idnatps))
    hospital = system_token(server, "system/*.crs", organization=f"9{uuid.uuid4().int % 10**8:08d}")
    with _client(server, hospital) as client:
        deposited = _created(client, _observation(records["b"], records["code"]))
    tokens = {
        "practitioner": (server_token(server.data_dir, server.base_url, "practitioner", idnatps=idnatps, profession="10"),
                         {f"Observation/{records['obs_a']}"}),
        "system": (hospital, {f"Observation/{deposited}"}),
        "platform": (server.token, {f"Observation/{records['obs_a']}", f"Observation/{records['obs_b']}",
                                    f"Observation/{deposited}"}),
    }
    for kind, (token, expected) in tokens.items():
        with _client(server, token) as client:
            assert _ids(_search(client, "/Observation", {"code": f"{CODES}|{records['code']}"})) == expected, kind
