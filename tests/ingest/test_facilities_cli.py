"""`fhir-server facilities add`: into the data dir's store when the server is not running, through
the server when it is, never around it."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.server_process import ServerProcess

ADD = [sys.executable, "-m", "fhir_server.cli", "facilities", "add"]
FACILITY = ["--finess", "999000077", "--name", "Clinique Fixture", "--msh4", "CLINFIX",
            "--custodian-id", "1.2.250.1.999.77^CF", "--facility-type", "SA04", "--practice-setting", "ETABLISSEMENT"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ADD, *args], capture_output=True, text=True, timeout=120)


def facility(server: ServerProcess) -> dict:
    found = server.get(f"{server.base_url}/Organization", params={"identifier": "urn:hl7v2:sending-facility|CLINFIX"}).json()
    [entry] = found["entry"]
    return entry["resource"]


def test_the_store_is_written_directly_when_the_server_is_down_and_through_it_when_it_runs(tmp_path):
    data_dir = tmp_path / "data"
    added = run("--data-dir", str(data_dir), *FACILITY)
    assert added.returncode == 0, added.stderr
    assert "added: Clinique Fixture (FINESS 999000077)" in added.stdout
    server = ServerProcess(data_dir).start()
    try:
        organization = facility(server)
        assert {(i["system"], i["value"]) for i in organization["identifier"]} == {
            ("urn:oid:1.2.250.1.71.4.2.2", "1999000077"), ("urn:hl7v2:sending-facility", "CLINFIX"), ("urn:oid:1.2.250.1.999.77", "CF"),
        }
        defaults = {e["url"].rsplit("/", 1)[1]: e["valueCodeableConcept"]["coding"][0]["code"] for e in organization["extension"]}
        assert defaults == {"default-facility-type": "SA04", "default-practice-setting": "ETABLISSEMENT"}

        around = run("--data-dir", str(data_dir), *FACILITY)
        assert around.returncode == 1
        assert "pass --server" in around.stderr

        # The admin token is signed with the key of the data dir the server runs on.
        through = run("--server", server.root_url, "--data-dir", str(data_dir), *FACILITY[:3], "Clinique Fixture renommée", *FACILITY[4:])
        assert through.returncode == 0, through.stderr
        assert "updated" in through.stdout
        renamed = facility(server)
        assert (renamed["id"], renamed["name"]) == (organization["id"], "Clinique Fixture renommée")
    finally:
        server.stop()


def test_codes_outside_the_value_sets_are_refused_before_anything_is_written(tmp_path):
    refused = run("--data-dir", str(tmp_path / "data"), *FACILITY[:8], "--facility-type", "NOT-A-CODE")
    assert refused.returncode == 2
    assert "'NOT-A-CODE' is not a code of" in refused.stderr
    assert not (tmp_path / "data").exists()
