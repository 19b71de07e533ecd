"""A version conflict inside a Bundle is never a 500 (issue 10, item 6): a transaction that meets one
is run again on fresh data or refused whole with 409; in a batch only the entry concerned fails; and
under many concurrent writers every version of a resource is there exactly once, in order."""

from __future__ import annotations

import base64
import threading
from collections import Counter
from typing import Any

import httpx
import orjson

from tests.server_process import ServerProcess

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
WRITERS = 12
ROUNDS = 6


def _client(server: ServerProcess) -> httpx.Client:
    return server.client(server.base_url, headers=FHIR_JSON, timeout=120.0)


def test_transaction_whose_entries_collide_is_409_and_leaves_nothing(fhir: httpx.Client, unique: str) -> None:
    """The DELETE runs first and removes the resource the conditional create matched: its write
    then meets a stored version it did not expect. That was a 500 (VersionConflict)."""
    identifier = {"system": SYSTEM, "value": f"conflict-{unique}"}
    created = fhir.post("/Patient", json={"resourceType": "Patient", "identifier": [identifier]})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
        {"resource": {"resourceType": "Patient", "identifier": [identifier], "gender": "male"},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={SYSTEM}|conflict-{unique}"}},
    ]}
    response = fhir.post("", json=bundle)
    assert response.status_code == 409, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "conflict"
    assert "Nothing of it was stored" in outcome["issue"][0]["diagnostics"]
    kept = fhir.get(f"/Patient/{pid}")
    assert kept.status_code == 200 and kept.json()["meta"]["versionId"] == "1"
    found = fhir.get("/Patient", params={"identifier": f"{SYSTEM}|conflict-{unique}"}).json()
    assert found["total"] == 1


def _birth_date(writer: int, round_: int) -> str:
    # Every write changes the resource, so each successful one makes exactly one version.
    return f"19{writer + 10:02d}-01-{round_ + 1:02d}"


def _put(pid: str, identifier: str, writer: int, round_: int) -> dict[str, Any]:
    resource = {"resourceType": "Patient", "id": pid, "identifier": [{"system": SYSTEM, "value": identifier}],
                "birthDate": _birth_date(writer, round_)}
    return {"resource": resource, "request": {"method": "PUT", "url": f"Patient/{pid}"}}


def _patch(pid: str, identifier: str, writer: int, round_: int) -> dict[str, Any]:
    operations = [{"op": "add", "path": "/birthDate", "value": _birth_date(writer, round_)}]
    data = base64.b64encode(orjson.dumps(operations)).decode()
    return {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
            "request": {"method": "PATCH", "url": f"Patient/{pid}"}}


def _conditional_put(pid: str, identifier: str, writer: int, round_: int) -> dict[str, Any]:
    resource = {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": identifier}],
                "birthDate": _birth_date(writer, round_)}
    return {"resource": resource, "request": {"method": "PUT", "url": f"Patient?identifier={SYSTEM}|{identifier}"}}


def test_concurrent_conflicting_bundles_keep_every_version_once(server: ServerProcess, unique: str) -> None:
    identifier = f"race-{unique}"
    with _client(server) as client:
        created = client.post("/Patient", json={"resourceType": "Patient",
                                                "identifier": [{"system": SYSTEM, "value": identifier}]})
        assert created.status_code == 201, created.text
    pid = created.json()["id"]
    statuses: Counter[str] = Counter()
    versions: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def refused_whole(response: httpx.Response) -> bool:
        return response.status_code == 409 and response.json()["resourceType"] == "OperationOutcome"

    def writer(number: int) -> None:
        with _client(server) as client:
            for round_ in range(ROUNDS):
                kind = "transaction" if (number + round_) % 2 else "batch"
                make = (_put, _patch, _conditional_put)[(number + round_) % 3]
                bundle = {"resourceType": "Bundle", "type": kind, "entry": [make(pid, identifier, number, round_)]}
                response = client.post("", json=bundle)
                with lock:
                    statuses[f"{kind} {response.status_code}"] += 1
                    if response.status_code != 200:
                        if not refused_whole(response):
                            failures.append(response.text)
                        continue
                    answer = response.json()["entry"][0]["response"]
                    statuses[f"{kind} entry {answer['status'].split()[0]}"] += 1
                    if answer["status"] == "200 OK":
                        versions.append(int(answer["etag"].strip('W/"')))
                    elif not answer["status"].startswith("409") or "outcome" not in answer:
                        failures.append(str(answer))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures, (statuses, failures[:3])
    with _client(server) as client:
        current = client.get(f"/Patient/{pid}").json()
        history = client.get(f"/Patient/{pid}/_history", params={"_count": "1000"}).json()
    # Every write that succeeded made one version of its own; none was lost, none made twice.
    last = int(current["meta"]["versionId"])
    assert sorted(versions) == list(range(2, last + 1)), statuses
    listed = sorted(int(e["response"]["etag"].strip('W/"')) for e in history["entry"])
    assert listed == list(range(1, last + 1))
    assert current["identifier"] == [{"system": SYSTEM, "value": identifier}]
