"""Bulk Data export (issue 17; FHIR Bulk Data Access 2.0.0): kick-off, polling, manifest, NDJSON
download checked against what was created, the access rules of the client that asked,
cancellation, and the refusals a client can cause.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.export.jobs import FILES
from tests.access.world import World, new_finess, new_ins, now, open_world
from tests.server_process import ServerProcess, server_token

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")
    world.system("H", new_finess())
    world.system("K", new_finess())
    for name in ("S", "S2"):
        # A full-access system client of the platform (no organisation) and another one.
        world.tokens[name] = server_token(server.data_dir, server.base_url, "system", client_id=f"{name}-{world.unique}")
    world.tokens["narrow"] = server_token(server.data_dir, server.base_url, "system", client_id=f"n-{world.unique}",
                                          scope="system/Observation.rs")
    patients = world.patients
    for name in ("P1", "P2", "P3"):
        patients[name], _ = world.patient()
        world.deposit(f"{name}-letter", "H", patients[name])
        world.binaries[f"{name}-obs"] = world.create({
            "resourceType": "Observation", "status": "final", "code": {"text": f"bulk {world.unique}"},
            "subject": {"reference": f"Patient/{patients[name]}"}})
    world.deposit("P1-other-establishment", "K", patients["P1"])
    world.binaries["group"] = world.create({
        "resourceType": "Group", "type": "person", "actual": True,
        "member": [{"entity": {"reference": f"Patient/{patients[n]}"}} for n in ("P1", "P2")]})
    world.patient_caller("P", new_ins())
    yield world
    world.http.close()


def _kickoff(world: World, caller: str, path: str, params: dict[str, str] | list[tuple[str, str]] | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
    return world.get(caller, path, params=params or {}, headers=headers if headers is not None else ASYNC)


def _status_url(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    return response.headers["Content-Location"]


def _manifest(world: World, caller: str, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = world.http.get(status_url, headers=world.headers(caller))
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            return dict(response.json())
        assert response.status_code == 202, response.text
        assert response.headers["X-Progress"] and response.headers["Retry-After"]
        time.sleep(0.2)
    raise AssertionError("the export did not complete within 60 s")


def _download(world: World, caller: str, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        response = world.http.get(item["url"], headers={"Authorization": world.headers(caller)["Authorization"],
                                                        "Accept": "application/fhir+ndjson"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in response.content.splitlines() if line]
        assert len(lines) == item["count"]
        assert {r["resourceType"] for r in lines} == {item["type"]}
        found.setdefault(item["type"], []).extend(lines)
    return found


def _ids(found: dict[str, list[dict[str, Any]]], resource_type: str) -> set[str]:
    return {r["id"] for r in found.get(resource_type, [])}


def test_a_group_export_end_to_end(world: World) -> None:
    group = world.binaries["group"]
    response = _kickoff(world, "S", f"/Group/{group}/$export", {"_outputFormat": "application/fhir+ndjson"})
    manifest = _manifest(world, "S", _status_url(response))
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith(f"/Group/{group}/$export?_outputFormat=application%2Ffhir%2Bndjson")
    assert manifest["transactionTime"] >= world.started
    assert manifest["error"] == []
    found = _download(world, "S", manifest)
    members = {world.patients["P1"], world.patients["P2"]}
    assert _ids(found, "Patient") == members
    assert _ids(found, "Observation") == {world.binaries["P1-obs"], world.binaries["P2-obs"]}
    documents = {world.key_of(i) for i in _ids(found, "DocumentReference")}
    assert documents == {"P1-letter", "P2-letter", "P1-other-establishment"}
    # The documents' bytes come as Binaries, data included.
    binaries = {r["id"]: r for r in found["Binary"]}
    assert world.documents["P1-letter"].binary_id in binaries
    assert binaries[world.documents["P1-letter"].binary_id]["data"]
    # The files are the client's: no token, or another client's, is refused.
    url = manifest["output"][0]["url"]
    assert world.http.get(url).status_code == 401
    assert world.http.get(url, headers=world.headers("S2")).status_code == 404


def test_an_establishment_exports_only_what_it_may_see(world: World) -> None:
    response = _kickoff(world, "H", "/Patient/$export", {"_type": "DocumentReference,Observation",
                                                         "_outputFormat": "ndjson"})
    found = _download(world, "H", _manifest(world, "H", _status_url(response)))
    documents = {world.key_of(i) for i in _ids(found, "DocumentReference")}
    # Its own deposits, across records; not the other establishment's, nor the platform's Observations.
    assert documents == {"P1-letter", "P2-letter", "P3-letter"}
    assert "Observation" not in found


def test_a_group_export_takes_the_group_s_active_patients_only(world: World) -> None:
    """Group.member.inactive (R4) takes a member out; a member that is not a Patient exports no record;
    a member named by a version of its Patient (R4 references.html#literal) is that Patient."""
    patients = world.patients
    group = world.create({
        "resourceType": "Group", "type": "person", "actual": True,
        "member": [{"entity": {"reference": f"Patient/{patients['P1']}/_history/1"}},
                   {"entity": {"reference": f"Patient/{patients['P2']}"}, "inactive": True},
                   # The same id as P3's record, under another type.
                   {"entity": {"reference": f"Group/{patients['P3']}"}}]})
    response = _kickoff(world, "S", f"/Group/{group}/$export", {"_type": "Patient,Observation"})
    found = _download(world, "S", _manifest(world, "S", _status_url(response)))
    assert _ids(found, "Patient") == {patients["P1"]}
    assert _ids(found, "Observation") == {world.binaries["P1-obs"]}


def test_a_lenient_kickoff_ignores_what_this_server_does_not_support(world: World, server: ServerProcess) -> None:
    world.tokens["L"] = server_token(server.data_dir, server.base_url, "system", client_id=f"L-{world.unique}")
    # RFC 7240 allows spaces around a preference's "=".
    lenient = {**ASYNC, "Prefer": "respond-async,handling = lenient"}
    response = _kickoff(world, "L", "/$export", {"_typeFilter": "Observation?status=final", "_type": "Observation"},
                        headers=lenient)
    status = _status_url(response)
    try:
        assert "(ignored: _typeFilter)" in response.json()["issue"][0]["diagnostics"]
    finally:
        world.http.delete(status, headers=world.headers("L"))
    strict = _kickoff(world, "L", "/$export", {"_typeFilter": "Observation?status=final"},
                      headers={**ASYNC, "Prefer": "respond-async; handling=strict"})
    assert strict.status_code == 400 and strict.json()["issue"][0]["expression"] == ["_typeFilter"]


def test_a_granular_scope_exports_nothing(world: World, server: ServerProcess) -> None:
    """A scope with criteria (system/Observation.rs?category=...) cannot be applied to an export:
    refused, rather than exporting every Observation."""
    world.tokens["granular"] = server_token(server.data_dir, server.base_url, "system", client_id=f"g-{world.unique}",
                                            scope="system/Observation.rs?category=laboratory")
    for params in ({"_type": "Observation"}, {}):
        refused = _kickoff(world, "granular", "/$export", params)
        assert refused.status_code == 403, refused.text
        assert refused.json()["issue"][0]["code"] == "forbidden"
        assert "system/" in refused.json()["issue"][0]["diagnostics"]


def test_a_system_export_reaches_types_outside_the_patient_compartment(world: World) -> None:
    # Organization is no Patient compartment type: exported at system level, refused at patient level.
    outside = {"_type": "Organization"}
    refused = _kickoff(world, "S2", "/Patient/$export", outside)
    assert refused.status_code == 400 and refused.json()["issue"][0]["expression"] == ["_type"]
    status = _status_url(_kickoff(world, "S2", "/$export", outside))
    world.http.delete(status, headers=world.headers("S2"))


def test_the_platform_exports_too(world: World) -> None:
    # `_type` given twice: both count.
    status = _status_url(_kickoff(world, "platform", "/Patient/$export", [("_type", "Patient"), ("_type", "Observation")]))
    try:
        found = _download(world, "platform", _manifest(world, "platform", status))
        assert {world.patients[n] for n in ("P1", "P2", "P3")} <= _ids(found, "Patient")
        assert {world.binaries[f"{n}-obs"] for n in ("P1", "P2", "P3")} <= _ids(found, "Observation")
    finally:
        world.http.delete(status, headers=world.headers("platform"))


def test_since_and_type_narrow_a_system_export(world: World) -> None:
    since = now()
    time.sleep(0.01)
    later = world.create({"resourceType": "Observation", "status": "final", "code": {"text": "after"},
                          "subject": {"reference": f"Patient/{world.patients['P3']}"}})
    response = _kickoff(world, "S", "/$export", {"_type": "Observation,Patient", "_since": since,
                                                 "_outputFormat": "application/ndjson"})
    found = _download(world, "S", _manifest(world, "S", _status_url(response)))
    assert found == {"Observation": found["Observation"]}
    assert _ids(found, "Observation") == {later}


def test_cancelling_deletes_the_job_and_its_files(world: World, store: Any) -> None:
    status = _status_url(_kickoff(world, "S2", f"/Group/{world.binaries['group']}/$export"))
    manifest = _manifest(world, "S2", status)
    job_id = status.rsplit("/", 1)[1]
    assert store[FILES].find_one({"job": job_id}) is not None
    cancelled = world.http.delete(status, headers=world.headers("S2"))
    assert cancelled.status_code == 202
    assert world.http.get(status, headers=world.headers("S2")).status_code == 404
    assert world.http.get(manifest["output"][0]["url"], headers=world.headers("S2")).status_code == 404
    # Its files are gone from the store, not only out of reach (they hold patients' data).
    assert store[FILES].find_one({"job": job_id}) is None
    # The slot is free again: a new export is accepted; cancelled while it runs, it is gone too.
    running = _status_url(_kickoff(world, "S2", "/$export"))
    assert world.http.delete(running, headers=world.headers("S2")).status_code == 202
    assert world.http.get(running, headers=world.headers("S2")).status_code == 404


def test_one_running_export_per_client(world: World) -> None:
    first = _status_url(_kickoff(world, "S2", "/$export"))
    second = _kickoff(world, "S2", "/$export")
    try:
        assert second.status_code == 429, second.text
        assert int(second.headers["Retry-After"]) > 0
        assert second.json()["resourceType"] == "OperationOutcome"
        [issue] = second.json()["issue"]
        assert issue["code"] == "throttled" and "DELETE" in issue["diagnostics"]
    finally:
        world.http.delete(first, headers=world.headers("S2"))


def test_what_a_client_can_get_wrong_is_refused(world: World) -> None:
    def outcome(response: httpx.Response, status: int) -> None:
        assert response.status_code == status, response.text
        assert response.json()["resourceType"] == "OperationOutcome"

    def issue(response: httpx.Response, status: int) -> tuple[str, list[str] | None]:
        outcome(response, status)
        first = response.json()["issue"][0]
        return first["code"], first.get("expression")

    assert issue(_kickoff(world, "S", "/$export", headers={"Accept": "application/fhir+json"}), 400) == ("required", None)
    assert issue(_kickoff(world, "S", "/$export", {"_outputFormat": "text/csv"}), 400) == \
        ("not-supported", ["_outputFormat"])
    assert issue(_kickoff(world, "S", "/$export", {"_since": "last week"}), 400) == ("invalid", ["_since"])
    assert issue(_kickoff(world, "S", "/$export", {"_typeFilter": "Observation?status=final"}), 400) == \
        ("not-supported", ["_typeFilter"])
    assert issue(_kickoff(world, "S", "/Patient/$export", {"_type": "Questionnaire"}), 400) == ("not-supported", ["_type"])
    outcome(_kickoff(world, "S", f"/Group/{uuid.uuid4()}/$export"), 404)
    for caller, path in (("P", "/Patient/$export"), ("P", "/$export"), ("A", "/$export"), ("A", "/Patient/$export")):
        assert issue(_kickoff(world, caller, path), 403) == ("forbidden", None), (caller, path)
    assert issue(_kickoff(world, "narrow", "/$export", {"_type": "Patient"}), 403) == ("forbidden", None)
    # Someone else's job is unknown to this client, whatever it asks of it.
    status = _status_url(_kickoff(world, "narrow", "/$export", {"_type": "Observation"}))
    try:
        for method in ("GET", "DELETE"):
            unknown = world.http.request(method, status, headers=world.headers("S"))
            assert issue(unknown, 404) == ("not-found", None)
            assert "No bulk export" in unknown.json()["issue"][0]["diagnostics"]
        manifest = _manifest(world, "narrow", status)
        assert {item["type"] for item in manifest["output"]} <= {"Observation"}
    finally:
        world.http.delete(status, headers=world.headers("narrow"))


def test_the_operations_are_declared(world: World) -> None:
    statement = world.get("platform", "/metadata").json()
    rest = statement["rest"][0]
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"} \
        in rest["operation"]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert any(o["name"] == "export" for o in by_type["Patient"]["operation"])
    assert any(o["name"] == "export" for o in by_type["Group"]["operation"])
