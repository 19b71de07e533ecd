"""`fhir-server mongo-setup`: the plan it sends to a mongos (read from --dry-run, no cluster here),
what it does to the embedded store of a running server (every index the server makes, once), and
its refusals (no store named, no store reached, another data dir's store, a key it will not change)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from fhir_server.config import Settings
from fhir_server.definitions import structure
from fhir_server.storage.database import EMBEDDED_STORE, collection_name
from fhir_server.storage.embedded import EmbeddedStore
from fhir_server.storage.mongo_setup import SetupRefused, State, Wanted, commands, wanted
from fhir_server.storage.sharding import audit_plan, shard_plan
from tests.server_process import ServerProcess, free_port

SETUP = [sys.executable, "-m", "fhir_server.cli", "mongo-setup"]
# The database names the server derives when FHIR_DATABASE and FHIR_AUDIT_DATABASE are unset.
CLINICAL, AUDIT = "fhir", "fhir_audit"


def setup(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "FHIR_DATABASE", "FHIR_AUDIT_DATABASE")}
    if url is not None:
        env["MONGODB_URL"] = url
    return subprocess.run([*SETUP, *args], capture_output=True, text=True, timeout=180, env=env)


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_dry_run_for_a_mongos_shards_every_plan_collection_by_its_key_after_enabling_its_database_once() -> None:
    result = setup("--dry-run", "--sharded")
    assert result.returncode == 0, result.stderr
    sent = [json.loads(line) for line in result.stdout.splitlines()]
    names = [next(iter(c["command"])) for c in sent]
    enabled = [c["command"]["enableSharding"] for c in sent if "enableSharding" in c["command"]]
    assert sorted(enabled) == [CLINICAL, AUDIT], "sharding is enabled once per database"
    sharded = {c["command"]["shardCollection"]: c["command"]["key"] for c in sent if "shardCollection" in c["command"]}
    types = structure.resource_types()
    expected = {f"{CLINICAL}.{c['collection']}": c["key"] for c in shard_plan(types)}
    expected |= {f"{AUDIT}.{c['collection']}": c["key"] for c in audit_plan()}
    assert sharded == expected
    assert sharded[f"{CLINICAL}.Observation"] == {"pat": "hashed", "_id": 1}
    assert f"{CLINICAL}.Practitioner" not in sharded and f"{CLINICAL}.Observation" in sharded
    for namespace, key in sharded.items():
        db, collection = namespace.split(".", 1)
        at = sent.index({"db": "admin", "command": {"shardCollection": namespace, "key": key}})
        before = sent[:at]
        assert {"db": "admin", "command": {"enableSharding": db}} in before, namespace
        assert {"db": db, "command": {"create": collection}} in before, namespace
        assert any(c["command"].get("createIndexes") == collection and key in [i["key"] for i in c["command"]["indexes"]]
                   for c in before), f"{namespace}: the key's index comes before shardCollection"
    # Every search index the server makes, array fields included (MongoDB indexes them right).
    indexes = {(c["db"], c["command"]["createIndexes"], i["name"]) for c in sent if "createIndexes" in c["command"]
               for i in c["command"]["indexes"]}
    assert {(CLINICAL, "Observation", "i_ix_code"), (CLINICAL, "Observation", "i_ix_subject"),
            (CLINICAL, "Practitioner", "i_ix_identifier"), (CLINICAL, "history", "rid_1"), (CLINICAL, "lookup", "k_1"),
            (CLINICAL, "subscribers", "i_pat"), (AUDIT, "audit_events", "i_who")} <= indexes
    chunks = [i for c in sent if c["command"].get("createIndexes") == "binaries.chunks" for i in c["command"]["indexes"]]
    assert chunks == [{"name": "files_id_1_n_1", "key": {"files_id": 1, "n": 1}, "unique": True}], \
        "GridFS's unique chunk index, made before the chunks are sharded by it"
    assert names.count("create") == len({(c["db"], c["command"]["create"]) for c in sent if "create" in c["command"]})


def test_the_plan_keeps_a_collection_sharded_by_its_key_and_refuses_one_sharded_by_another() -> None:
    plan = [Wanted(CLINICAL, "Observation", key={"pat": "hashed", "_id": 1})]
    state = State(collections={CLINICAL: {"Observation"}}, sharding_enabled={CLINICAL},
                  indexes={(CLINICAL, "Observation"): [[("_id", 1)], [("pat", "hashed"), ("_id", 1)]]},
                  sharded={f"{CLINICAL}.Observation": {"pat": "hashed", "_id": 1}})
    assert list(commands(plan, state)) == []
    state.sharded[f"{CLINICAL}.Observation"] = {"_id": "hashed"}
    with pytest.raises(SetupRefused, match=r'fhir.Observation is sharded by \{"_id": "hashed"\}'):
        list(commands(plan, state))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("mongo-setup") / "data").start()
    try:
        yield server
    finally:
        server.stop()


def store_url(server: ServerProcess) -> str:
    return EmbeddedStore(server.data_dir).url_file.read_text(encoding="ascii").strip()


def store_indexes(url: str) -> set[tuple[str, str, tuple]]:
    client: MongoClient[dict] = MongoClient(url)
    try:
        return {(db, name, tuple(index["key"].items())) for db in (CLINICAL, AUDIT)
                for name in client[db].list_collection_names() for index in client[db][name].list_indexes()
                if list(index["key"]) != ["_id"]}
    finally:
        client.close()


def test_on_the_embedded_store_it_creates_every_index_the_server_makes_and_a_second_run_nothing(
        running: ServerProcess) -> None:
    # Some types the server has indexed itself already, the others not yet.
    patient = running.post(f"{running.base_url}/Patient", json={"resourceType": "Patient"})
    assert patient.status_code == 201, patient.text
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "poids"},
                   "subject": {"reference": f"Patient/{patient.json()['id']}"}}
    assert running.post(f"{running.base_url}/Observation", json=observation).status_code == 201
    url = store_url(running)
    before = store_indexes(url)

    first = setup("--data-dir", str(running.data_dir), url=url)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    assert first.stdout.startswith("the embedded store at MONGODB_URL: ") and "indexes created" in first.stdout
    after = store_indexes(url)
    plan = {(w.db, w.collection, tuple(i.document["key"].items()))
            for w in wanted(Settings(), EMBEDDED_STORE, sharded=False) for i in w.indexes}
    assert plan <= after, "every index of the server's lists is in the store"
    assert before <= plan, "mongo-setup knows every index the server made itself"
    assert (CLINICAL, "Immunization", (("sid", 1),)) in after - before, "types never written are indexed too"
    assert (CLINICAL, collection_name("Group"), (("pat", 1),)) in after

    second = setup("--data-dir", str(running.data_dir), url=url)
    assert (second.returncode, second.stderr) == (0, "")
    assert second.stdout == "the embedded store at MONGODB_URL: nothing to change, every collection and index is in place\n"
    assert store_indexes(url) == after
    dry = setup("--data-dir", str(running.data_dir), "--dry-run", url=url)
    assert (dry.returncode, dry.stdout) == (0, ""), dry.stderr
    # The server goes on serving, on the indexes made for it.
    search = running.get(f"{running.base_url}/Observation", params={"subject": f"Patient/{patient.json()['id']}"})
    assert search.status_code == 200 and search.json()["total"] == 1


def test_the_embedded_store_of_a_server_is_refused_without_its_data_dir(running: ServerProcess, tmp_path: Path) -> None:
    assert "embedded store of another data dir" in one_line_refusal(setup(url=store_url(running)))
    assert "embedded store of another data dir" in one_line_refusal(setup("--data-dir", str(tmp_path), url=store_url(running)))


def test_without_a_store_it_refuses_in_one_line() -> None:
    assert "MONGODB_URL is not set" in one_line_refusal(setup())
    assert "MONGODB_URL is not set" in one_line_refusal(setup("--dry-run"))
    unreachable = one_line_refusal(setup(url=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"))
    assert unreachable == "fhir-server mongo-setup: cannot reach MongoDB at MONGODB_URL: ServerSelectionTimeoutError\n"
    assert "--sharded goes with --dry-run" in one_line_refusal(setup("--sharded"))
