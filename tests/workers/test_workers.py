"""`fhir-server serve --workers 4` on the embedded store (issue 25): one port, one store, four
processes, and what must happen once happens once.

Concurrent requests open their own connections, which the kernel hands to whichever worker
accepts first; `serving_workers` checks from /proc that they did reach several processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from pymongo import MongoClient

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import mllp_send
from fhir_server.storage.claims import CLAIMS, claim_key
from tests.hl7v2.test_intake_store import personalised
from tests.mhd.documents import patient, provide_bundle
from tests.security.test_clients import clients, exchange, key_pair, register
from tests.security.tokens import bearer
from tests.server_process import IN_PROCESS, ServerProcess, free_port

pytestmark = pytest.mark.skipif(IN_PROCESS, reason="workers are processes of `fhir-server serve`")

WORKERS = 4
CONCURRENT = 40
FHIR_JSON = "application/fhir+json"
T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("workers") / "data", workers=WORKERS).start()
    yield process
    process.stop()


def at_once(count: int, call: Callable[[httpx.Client], T]) -> list[T]:
    """`count` calls released together, each on a connection of its own."""
    barrier = threading.Barrier(count)

    def one(_: int) -> T:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return call(client)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def workers_of(server: ServerProcess) -> list[int]:
    """The server's worker processes (its children, the store aside)."""
    assert server.process is not None
    return [pid for pid in children(server.process.pid)
            if (command := _cmdline(pid)) is not None and b"nx_27017" not in command]


def _cmdline(pid: int) -> bytes | None:
    """The command line of `pid`, or None for a process that ended since it was listed."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def serving_workers(server: ServerProcess, hold: Callable[[], None]) -> set[int]:
    """The workers holding a connection to the HTTP port while `hold` runs: each connection is a
    socket of the process that accepted it (its inode in /proc/<pid>/fd, its port in /proc/net/tcp)."""
    seen: set[int] = set()
    done = threading.Event()

    def look() -> None:
        while not done.is_set():
            inodes = set()
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) == server.port and fields[3] == "01":  # ESTABLISHED
                    inodes.add(fields[9])
            for pid in workers_of(server):
                try:
                    fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
                except OSError:
                    continue
                if any(fd.startswith("socket:[") and fd[8:-1] in inodes for fd in fds):
                    seen.add(pid)
            time.sleep(0.01)

    watcher = threading.Thread(target=look)
    watcher.start()
    try:
        hold()
    finally:
        done.set()
        watcher.join()
    return seen


def test_four_workers_share_one_port_and_one_store(server: ServerProcess) -> None:
    assert len(workers_of(server)) == WORKERS
    stores = [pid for pid in children(server.process.pid) if pid not in workers_of(server)]  # type: ignore[union-attr]
    assert len(stores) == 1, "one embedded store for every worker"

    def slow_searches() -> None:
        at_once(CONCURRENT, lambda c: c.get(f"{server.base_url}/Patient", params={"_count": 50},
                                             headers=server.headers).status_code)

    assert len(serving_workers(server, slow_searches)) >= 2, "concurrent connections spread over the workers"


def test_concurrent_if_match_updates_one_wins(server: ServerProcess) -> None:
    created = server.post(f"{server.base_url}/Patient", json={"resourceType": "Patient", "gender": "male"},
                          headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]

    def update(client: httpx.Client) -> int:
        body = {"resourceType": "Patient", "id": patient_id, "gender": "female",
                "name": [{"family": uuid.uuid4().hex}]}
        return client.put(f"{server.base_url}/Patient/{patient_id}", json=body,
                          headers={**server.headers, "Content-Type": FHIR_JSON, "If-Match": 'W/"1"'}).status_code

    statuses = at_once(CONCURRENT, update)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409, 412}, statuses
    read = server.get(f"{server.base_url}/Patient/{patient_id}").json()
    assert read["meta"]["versionId"] == "2"
    history = server.get(f"{server.base_url}/Patient/{patient_id}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]


def test_concurrent_conditional_creates_make_one_resource(server: ServerProcess, unique: str) -> None:
    identifier = f"urn:oid:1.2.250.1.999.25|{unique}"

    def create(client: httpx.Client) -> httpx.Response:
        body = {"resourceType": "Patient", "identifier": [{"system": identifier.split("|")[0], "value": unique}]}
        return client.post(f"{server.base_url}/Patient", json=body,
                           headers={**server.headers, "Content-Type": FHIR_JSON, "If-None-Exist": f"identifier={identifier}"})

    answers = at_once(CONCURRENT, create)
    assert sorted({a.status_code for a in answers}) == [200, 201], [a.status_code for a in answers]
    assert [a.status_code for a in answers].count(201) == 1
    assert len({a.json()["id"] for a in answers}) == 1, "every answer names the one resource"
    found = server.get(f"{server.base_url}/Patient", params={"identifier": identifier}).json()
    assert found["total"] == 1


def test_concurrent_conditional_creates_in_transactions_make_one_resource(server: ServerProcess, unique: str) -> None:
    identifier = f"urn:oid:1.2.250.1.999.25|tx{unique}"
    system, value = identifier.split("|")

    def transaction(client: httpx.Client) -> httpx.Response:
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": {"resourceType": "Patient", "identifier": [{"system": system, "value": value}]},
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={identifier}"}}]}
        return client.post(server.base_url, json=bundle, headers={**server.headers, "Content-Type": FHIR_JSON})

    answers = at_once(CONCURRENT, transaction)
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers if a.status_code != 200][:1]
    statuses = [a.json()["entry"][0]["response"]["status"] for a in answers]
    assert sum(s.startswith("201") for s in statuses) == 1, statuses
    named = {a.json()["entry"][0]["response"]["location"].split("/_history")[0] for a in answers}
    assert len(named) == 1, named
    assert server.get(f"{server.base_url}/Patient", params={"identifier": identifier}).json()["total"] == 1


def test_searches_on_array_fields_are_right_on_every_worker(server: ServerProcess, unique: str) -> None:
    """Issue 10's defect: a second process on the store once indexed array fields, after which the
    embedded store answered 0 to `Patient?gender=female`. Every worker indexes what it first uses."""
    for gender in ("female", "female", "female", "male"):
        body = {"resourceType": "Patient", "gender": gender, "name": [{"family": f"Array{unique}"}],
                "identifier": [{"system": "urn:oid:1.2.250.1.999.26", "value": f"{unique}-{gender}"}]}
        assert server.post(f"{server.base_url}/Patient", json=body, headers={"Content-Type": FHIR_JSON}).status_code == 201
    # Observation is a type no test of this module used before: every worker indexes it now, at once.
    observation = {"resourceType": "Observation", "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": f"{unique[:5]}-1"}]},
                   "category": [{"coding": [{"system": "urn:test", "code": unique}]}]}

    def searches(client: httpx.Client) -> tuple[int, int, int]:
        get = lambda path, params: client.get(f"{server.base_url}/{path}", params=params,  # noqa: E731
                                              headers=server.headers).json()["total"]
        return (get("Patient", {"family": f"Array{unique}", "gender": "female"}),
                get("Patient", {"identifier": f"urn:oid:1.2.250.1.999.26|{unique}-male"}),
                get("Observation", {"category": f"urn:test|{unique}"}))

    assert server.post(f"{server.base_url}/Observation", json=observation,
                       headers={"Content-Type": FHIR_JSON}).status_code == 201
    assert set(at_once(CONCURRENT, searches)) == {(3, 1, 1)}


def test_a_disabled_client_is_refused_by_every_worker_within_a_second(server: ServerProcess, tmp_path: Path) -> None:
    key, jwks, kid = key_pair(tmp_path, "EC")
    client_id = register(server, jwks, "system/*.rs")
    access = exchange(server, client_id, key, kid, "system/*.rs").json()["access_token"]

    def status(client: httpx.Client) -> int:
        return client.get(f"{server.base_url}/Patient", params={"_count": 0}, headers=bearer(access)).status_code

    # Every worker has seen (and cached) the token before it is disabled.
    assert set(at_once(CONCURRENT, status)) == {200}
    disabled = clients(server, "disable", client_id)
    assert disabled.returncode == 0, disabled.stderr
    refused_at = time.monotonic()
    # Polled with a generous deadline (../shared/DECISIONS.md, "Time and budgets"); the registry
    # reloads every second, so in practice each worker refuses within about one.
    while set(at_once(CONCURRENT, status)) != {401}:
        assert time.monotonic() - refused_at < 10, "some worker still accepts the disabled client's token"
    # Refused everywhere, and stays so: no worker lags behind the others.
    for _ in range(5):
        assert set(at_once(CONCURRENT, status)) == {401}


def test_mllp_is_served_by_the_workers_on_one_port(server: ServerProcess, unique: str) -> None:
    async def send_all() -> list[bytes]:
        return await asyncio.gather(*(mllp_send("127.0.0.1", server.mllp_port, personalised("adt_a28.hl7", f"{unique}{i}"), 60)
                                      for i in range(8)))

    answers = asyncio.run(send_all())
    assert [er7.parse(a).text("MSA-1") for a in answers] == ["AA"] * 8


def test_a_worker_that_dies_is_replaced(server: ServerProcess) -> None:
    victim = workers_of(server)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (len(workers_of(server)) == WORKERS and victim not in workers_of(server)):
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.1)
    assert set(at_once(CONCURRENT, lambda c: c.get(f"{server.base_url}/metadata").status_code)) == {200}
    log = server.log_path.read_text()
    assert f"(PID {victim}) exited (signal SIGKILL); starting a new one" in log


def test_sigterm_stops_every_worker_and_the_store(tmp_path: Path) -> None:
    process = ServerProcess(tmp_path / "data", workers=2).start()
    assert process.process is not None
    everyone = children(process.process.pid)
    assert len(everyone) == 3
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=30) == 0
    process.process = None
    for pid in everyone:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    # The data dir is free again: a new server starts on it at once.
    ServerProcess(tmp_path / "data", workers=2).start().stop()


def test_a_conditional_create_claims_its_criteria_in_the_store(server: ServerProcess, unique: str) -> None:
    """What makes two concurrent conditional creates collide on MongoDB (fhir_server/storage/claims.py),
    whose transactions, unlike the embedded store's gate, let both see no match: the claim is
    written by the create's own transaction, one document per criteria however they are spelled."""
    url = (server.data_dir / "embedded-store.url").read_text().strip()
    store: MongoClient[dict] = MongoClient(url)
    try:
        claims = store["fhir"][CLAIMS]
        criteria = f"identifier=urn:oid:1.2.250.1.999.27|{unique}&gender=female"
        body = {"resourceType": "Patient", "gender": "female",
                "identifier": [{"system": "urn:oid:1.2.250.1.999.27", "value": unique}]}
        for spelled in (criteria, "&".join(reversed(criteria.split("&"))).replace("|", "%7C")):
            answer = server.post(f"{server.base_url}/Patient", json=body,
                                 headers={"Content-Type": FHIR_JSON, "If-None-Exist": spelled})
            assert answer.status_code in (200, 201), answer.text
        claimed = claims.find_one({"_id": claim_key("Patient", criteria)})
        assert claimed is not None and claimed["n"] == 1, "the second create found the first: nothing to claim"
    finally:
        store.close()


def test_a_claim_is_keyed_by_a_fixed_length_digest_whatever_the_criteria(server: ServerProcess, unique: str) -> None:
    """Criteria are the caller's, of any length; the claim's `_id` (an index key, MongoDB's shard
    key) is the SHA-256 of their canonical form, which stays readable beside it."""
    url = (server.data_dir / "embedded-store.url").read_text().strip()
    store: MongoClient[dict] = MongoClient(url)
    try:
        value = f"{unique}-{'x' * 5000}"
        body = {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.250.1.999.27", "value": value}]}
        answer = server.post(f"{server.base_url}/Patient", json=body,
                             headers={"Content-Type": FHIR_JSON, "If-None-Exist": f"identifier=urn:oid:1.2.250.1.999.27|{value}"})
        assert answer.status_code == 201, answer.text
        form = f"Patient?identifier=urn%3Aoid%3A1.2.250.1.999.27%7C{value}"
        claimed = store["fhir"][CLAIMS].find_one({"_id": hashlib.sha256(form.encode()).hexdigest()})
        assert claimed is not None and claimed["c"] == form and claimed["n"] == 1
    finally:
        store.close()


def test_ready_is_said_once_every_worker_serves(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(port), "--workers", "3",
                                "--data-dir", str(tmp_path / "data"), "--log-level", "info"],
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        started = 0
        for line in process.stderr:
            started += "Application startup complete" in line
            if "ready: FHIR R4 at" in line:
                break
        else:
            pytest.fail("the server never said ready")
        assert started == 3, "ready before every worker had started"
        assert httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5).status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=40) == 0


@pytest.mark.parametrize("which", ["http", "mllp"])
def test_a_port_in_use_is_still_one_line_with_workers(tmp_path: Path, which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = ["--port", str(port)] if which == "http" else ["--port", str(free_port()), "--mllp-port", str(port)]
        result = subprocess.run([sys.executable, "-m", "fhir_server.cli", "serve", "--workers", "4", *ports,
                                 "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"fhir-server: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize("route", ["rest", "transaction"])
def test_a_conditional_update_that_creates_claims_its_criteria(server: ServerProcess, unique: str, route: str) -> None:
    criteria = f"identifier=urn:oid:1.2.250.1.999.28|{route}{unique}"
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.250.1.999.28", "value": f"{route}{unique}"}]}
    if route == "rest":
        answer = server.request("PUT", f"{server.base_url}/Patient?{criteria}", json=body,
                                headers={"Content-Type": FHIR_JSON})
    else:
        answer = server.post(server.base_url, headers={"Content-Type": FHIR_JSON}, json={
            "resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": body, "request": {"method": "PUT", "url": f"Patient?{criteria}"}}]})
    assert answer.status_code in (200, 201), answer.text
    store: MongoClient[dict] = MongoClient((server.data_dir / "embedded-store.url").read_text().strip())
    try:
        assert store["fhir"][CLAIMS].find_one({"_id": claim_key("Patient", criteria)}) is not None
    finally:
        store.close()


def test_concurrent_deposits_of_one_document_store_it_once(server: ServerProcess, unique: str) -> None:
    """ITI-65: a masterIdentifier already in the record is a 409, whichever worker each deposit reaches."""
    patient_answer = server.post(f"{server.base_url}/Patient", json=patient("2" + str(int(unique, 16))[:14].rjust(14, "0")),
                                 headers={"Content-Type": FHIR_JSON})
    assert patient_answer.status_code == 201, patient_answer.text
    subject = {"reference": f"Patient/{patient_answer.json()['id']}"}
    master = f"1.2.250.1.999.1.1.7.{int(unique, 16) % 10**12}"

    def deposit(client: httpx.Client) -> int:
        return client.post(server.base_url, json=provide_bundle(subject, master),
                           headers={**server.headers, "Content-Type": FHIR_JSON}).status_code

    statuses = at_once(20, deposit)
    assert statuses.count(200) == 1 and statuses.count(409) == 19, statuses
    found = server.get(f"{server.base_url}/DocumentReference",
                       params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master}"}).json()
    assert found["total"] == 1
    store: MongoClient[dict] = MongoClient((server.data_dir / "embedded-store.url").read_text().strip())
    try:
        claimed = store["fhir"][CLAIMS].find_one(
            {"_id": claim_key("DocumentReference", [("identifier", f"urn:ietf:rfc:3986|urn:oid:{master}")])})
        assert claimed is not None and claimed["n"] == 1
    finally:
        store.close()


def test_a_resource_another_worker_moved_is_read_where_it_now_is(server: ServerProcess) -> None:
    """Each worker remembers the routes of what it read (issue 18); one that another worker made
    stale (the resource moved to another patient's record) costs a lookup, never a wrong answer."""
    patients = []
    for family in ("Before", "After"):
        created = server.post(f"{server.base_url}/Patient", json={"resourceType": "Patient", "name": [{"family": family}]},
                              headers={"Content-Type": FHIR_JSON})
        assert created.status_code == 201, created.text
        patients.append(created.json()["id"])
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                   "subject": {"reference": f"Patient/{patients[0]}"}}
    created = server.post(f"{server.base_url}/Observation", json=observation, headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201, created.text
    url = f"{server.base_url}/Observation/{created.json()['id']}"

    def read(client: httpx.Client, path: str = "") -> tuple[int, str | None]:
        response = client.get(url + path, headers={**server.headers, "Accept": FHIR_JSON})
        body = response.json()
        return response.status_code, (body.get("subject") or {}).get("reference")

    # Every worker reads it, and remembers its route to the first patient.
    assert set(at_once(CONCURRENT, read)) == {(200, f"Patient/{patients[0]}")}
    moved = server.request("PUT", url, json={**observation, "id": created.json()["id"], "subject": {"reference": f"Patient/{patients[1]}"}},
                       headers={"Content-Type": FHIR_JSON})
    assert moved.status_code == 200, moved.text
    assert set(at_once(CONCURRENT, read)) == {(200, f"Patient/{patients[1]}")}
    assert set(at_once(CONCURRENT, lambda client: read(client, "/_history/2"))) == {(200, f"Patient/{patients[1]}")}
    # The first version moved with it (masking and records follow the resource's history).
    assert set(at_once(CONCURRENT, lambda client: read(client, "/_history/1"))) == {(200, f"Patient/{patients[0]}")}
