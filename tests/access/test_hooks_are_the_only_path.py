"""The named hooks are the only path: a server whose search-filter hook hides resources tagged
`hidden-by-hook` (tests/access/hidden_tag_hooks.py) never lets one be found, counted, included,
chained through, reverse-chained through, listed in history or read, on any route, and every
resource leaving it has passed the resource-read hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.access.conftest import HookedServer
from tests.access.hidden_tag_hooks import HIDDEN, SHOWN
from tests.access.world import not_found_shape

SYSTEM = "http://example.org/fhir-server/tests/id"
CODES = "http://example.org/fhir-server/tests/codes"


@pytest.fixture(scope="module")
def hooked(hooked_server: HookedServer) -> httpx.Client:
    return hooked_server.client


def _create(client: httpx.Client, resource: dict[str, Any], hidden: bool = False) -> str:
    if hidden:
        resource = {**resource, "meta": {"tag": [HIDDEN]}}
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _patient(family: str, value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}], "identifier": [{"system": SYSTEM, "value": value}]}


def _observation(patient: str, code: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": CODES, "code": code}]}}


@pytest.fixture(scope="module")
def record(hooked: httpx.Client) -> dict[str, str]:
    """A visible patient with a visible and a hidden observation; a hidden patient with a visible one."""
    ids: dict[str, str] = {}
    ids["patient"] = _create(hooked, _patient("Visible", "shown-1"))
    ids["hidden_patient"] = _create(hooked, _patient("Hidden", "hidden-1"), hidden=True)
    ids["obs"] = _create(hooked, _observation(ids["patient"], "seen-code"))
    ids["hidden_obs"] = _create(hooked, _observation(ids["patient"], "secret-code"), hidden=True)
    ids["obs_of_hidden"] = _create(hooked, _observation(ids["hidden_patient"], "seen-code"))
    return ids


def _ids(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])
            if "resource" in e and e["resource"]["resourceType"] != "OperationOutcome"
            and (mode is None or e.get("search", {}).get("mode") == mode)}


def _search(client: httpx.Client, path: str, params: dict[str, str]) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_search_and_totals_leave_hidden_resources_out(hooked: httpx.Client, record: dict[str, str]) -> None:
    subject = {"subject": f"Patient/{record['patient']}"}
    assert _ids(_search(hooked, "/Observation", subject)) == {record["obs"]}
    assert _search(hooked, "/Observation", {**subject, "_total": "accurate"})["total"] == 1
    assert _search(hooked, "/Observation", {**subject, "_summary": "count"})["total"] == 1
    assert _search(hooked, "/Observation", {**subject, "_count": "0"})["total"] == 1
    assert _ids(_search(hooked, "/Observation", {"code": f"{CODES}|secret-code"})) == set()
    assert _ids(_search(hooked, "/Patient", {"identifier": f"{SYSTEM}|hidden-1"})) == set()


def test_paging_has_no_gap_where_a_hidden_resource_is(hooked: httpx.Client, record: dict[str, str]) -> None:
    first = _search(hooked, "/Observation", {"subject": f"Patient/{record['patient']}", "_count": "1",
                                              "_sort": "_id"})
    assert _ids(first) == {record["obs"]}
    assert not [link for link in first["link"] if link["relation"] == "next"], "a next page for a hidden resource"


def test_include_and_revinclude_leave_hidden_resources_out(hooked: httpx.Client, record: dict[str, str]) -> None:
    included = _search(hooked, "/Observation", {"code": f"{CODES}|seen-code", "_include": "Observation:subject",
                                                "_id": f"{record['obs']},{record['obs_of_hidden']}"})
    assert _ids(included, "match") == {record["obs"], record["obs_of_hidden"]}
    assert _ids(included, "include") == {record["patient"]}
    revincluded = _search(hooked, "/Patient", {"_id": record["patient"], "_revinclude": "Observation:subject"})
    assert _ids(revincluded, "include") == {record["obs"]}
    iterated = _search(hooked, "/Observation", {"_id": record["obs"], "_include": "Observation:subject",
                                                "_revinclude:iterate": "Observation:subject"})
    assert record["hidden_obs"] not in _ids(iterated)


def test_chains_and_has_do_not_pass_through_hidden_resources(hooked: httpx.Client, record: dict[str, str]) -> None:
    assert _ids(_search(hooked, "/Observation", {"subject:Patient.identifier": f"{SYSTEM}|hidden-1"})) == set()
    assert _ids(_search(hooked, "/Observation", {"subject:Patient.identifier": f"{SYSTEM}|shown-1"})) == {record["obs"]}
    assert _ids(_search(hooked, "/Patient", {"_has:Observation:subject:code": f"{CODES}|secret-code"})) == set()
    assert _ids(_search(hooked, "/Patient", {"_has:Observation:subject:code": f"{CODES}|seen-code",
                                              "identifier": f"{SYSTEM}|shown-1"})) == {record["patient"]}


def test_history_leaves_hidden_resources_out(hooked: httpx.Client, record: dict[str, str]) -> None:
    for path in ("/_history", "/Observation/_history", "/Patient/_history"):
        listed = _ids(_search(hooked, path, {"_count": "100"}))
        assert record["obs"] in listed or record["patient"] in listed
        assert not listed & {record["hidden_obs"], record["hidden_patient"]}, path
    assert _search(hooked, f"/Observation/{record['hidden_obs']}/_history", {}).get("entry", []) == []


def test_read_and_vread_of_a_hidden_resource_answer_like_one_that_never_existed(
        hooked: httpx.Client, record: dict[str, str]) -> None:
    never = hooked.get("/Observation/never-existed-here")
    hidden_id = record["hidden_obs"]
    for path in (f"/Observation/{hidden_id}", f"/Observation/{hidden_id}/_history/1"):
        hidden = hooked.get(path)
        assert hidden.status_code == never.status_code == 404, path
        assert hidden.json()["issue"][0]["code"] == never.json()["issue"][0]["code"]
        # Word for word what a never-known id gets.
        assert not_found_shape(hidden, hidden_id) == \
            not_found_shape(hooked.get(path.replace(hidden_id, "never-existed-here")), "never-existed-here")


def test_batch_searches_and_reads_honour_the_hooks(hooked: httpx.Client, record: dict[str, str]) -> None:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Observation?subject=Patient/{record['patient']}&_total=accurate"}},
        {"request": {"method": "GET", "url": f"Observation/{record['hidden_obs']}"}},
        {"request": {"method": "GET", "url": f"Patient?_has:Observation:subject:code={CODES}|secret-code"}},
        {"request": {"method": "GET", "url": f"?_type=Observation,Patient&_id={record['hidden_obs']},{record['hidden_patient']}"}},
    ]}
    response = hooked.post("", json=bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert _ids(entries[0]["resource"]) == {record["obs"]} and entries[0]["resource"]["total"] == 1
    assert entries[1]["response"]["status"].startswith("404")
    assert _ids(entries[2]["resource"]) == set()
    assert _ids(entries[3]["resource"]) == set()


def test_conditional_writes_do_not_reveal_or_fork_a_hidden_resource(hooked: httpx.Client, record: dict[str, str]) -> None:
    # The hidden patient's identifier: a conditional create must neither say which resource it is
    # nor create a second patient with that identifier.
    response = hooked.post("/Patient", json=_patient("Other", "hidden-1"),
                           headers={"If-None-Exist": f"identifier={SYSTEM}|hidden-1"})
    assert response.status_code == 409
    assert record["hidden_patient"] not in response.text
    assert _ids(_search(hooked, "/Patient", {"identifier": f"{SYSTEM}|hidden-1"})) == set()
    conditional = hooked.put("/Patient", params={"identifier": f"{SYSTEM}|hidden-1"}, json=_patient("Other", "hidden-1"))
    assert conditional.status_code == 409 and record["hidden_patient"] not in conditional.text
    # An update by id neither overwrites the hidden resource nor tells what it holds.
    hidden_id = record["hidden_obs"]
    overwrite = hooked.put(f"/Observation/{hidden_id}", json={**_observation(record["patient"], "seen-code"),
                                                                "id": hidden_id})
    assert overwrite.status_code == 409 and "secret-code" not in overwrite.text
    assert _ids(_search(hooked, "/Observation", {"_id": hidden_id})) == set()
    assert hooked.delete(f"/Observation/{hidden_id}").status_code == 204
    assert hooked.patch(f"/Observation/{hidden_id}", json=[{"op": "replace", "path": "/status", "value": "amended"}],
                        headers={"Content-Type": "application/json-patch+json"}).status_code == 404


def test_every_resource_leaving_the_server_passed_the_read_hook(hooked: httpx.Client, record: dict[str, str]) -> None:
    def shown(resource: dict[str, Any]) -> bool:
        return SHOWN in (resource.get("meta") or {}).get("tag", [])

    assert shown(hooked.get(f"/Patient/{record['patient']}").json())
    assert shown(hooked.get(f"/Patient/{record['patient']}/_history/1").json())
    found = _search(hooked, "/Patient", {"_id": record["patient"], "_revinclude": "Observation:subject"})
    assert found["entry"] and all(shown(e["resource"]) for e in found["entry"])
    history = _search(hooked, f"/Patient/{record['patient']}/_history", {})
    assert history["entry"] and all(shown(e["resource"]) for e in history["entry"])
    created = hooked.post("/Patient", json=_patient("Written", "shown-2"))
    assert created.status_code == 201 and shown(created.json())


def test_a_hooks_module_that_cannot_be_loaded_is_one_line_at_start(tmp_path: Path) -> None:
    from tests.api.test_store_lifecycle import one_line, serve
    from tests.server_process import free_port

    result = serve(tmp_path / "data", free_port(), env={"FHIR_HOOKS": "tests.access.no_such_hooks"})
    assert result.returncode == 1
    assert one_line(result.stderr) == ("fhir-server: FHIR_HOOKS names 'tests.access.no_such_hooks', which cannot be "
                                       "loaded: No module named 'tests.access.no_such_hooks'")
