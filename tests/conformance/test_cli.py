"""The command as a tester meets it: listing and picking tests, a missing token, an unreachable or
non-conformant server, role tokens not given. Failures are verdicts citing requirements, never tracebacks."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conformance.tool import run_tool
from tests.server_process import ServerProcess


def test_list_prints_every_case_with_its_requirement_and_select_picks_by_id_prefix_or_tag() -> None:
    listed = run_tool("--list")
    assert listed.returncode == 0, listed.explain()
    assert "FHIR-transaction-02" in listed.stdout
    assert "FHIR-R4 http.html#transaction" in listed.stdout and "Servers SHALL replace all matching links" in listed.stdout
    assert "ACCESS-04" in listed.stdout and "HL7V2-01" in listed.stdout
    picked = run_tool("--list", "--select", "FHIR-read,ITI-65")
    ids = [line.split()[0] for line in picked.stdout.splitlines() if line and not line.startswith(" ")]
    assert ids and all(i.startswith(("FHIR-read-", "MHD-ITI65-", "PDSm-ITI65-")) for i in ids), ids
    assert {"FHIR-read-01", "FHIR-read-02", "MHD-ITI65-02"} <= set(ids)
    left = run_tool("--list", "--select", "MHD", "--exclude", "ITI-67,MHD-ITI68-02")
    kept = [line.split()[0] for line in left.stdout.splitlines() if line and not line.startswith(" ")]
    assert "MHD-ITI65-01" in kept and "MHD-ITI68-01" in kept
    assert not any(k.startswith("MHD-ITI67") for k in kept) and "MHD-ITI68-02" not in kept
    typo = run_tool("--list", "--select", "FHIR-raed")
    assert typo.returncode == 2 and "no test matches --select FHIR-raed" in typo.stderr, typo.explain()


def test_without_a_token_the_401_is_reported_as_such(server: ServerProcess, tmp_path: Path) -> None:
    run = run_tool("--base-url", server.base_url, "--select", "FHIR-create-01,MHD-ITI65-01", report_dir=tmp_path)
    assert run.returncode == 1, run.explain()
    assert "Traceback" not in run.stdout + run.stderr
    assert "401 (authentication required): give --token" in run.stdout
    assert set(run.verdicts().values()) == {"failed"}


def test_an_unreachable_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run = run_tool("--base-url", "http://127.0.0.1:9/fhir", report_dir=tmp_path)
    assert run.returncode == 2 and "cannot reach http://127.0.0.1:9/fhir/metadata" in run.stderr, run.explain()
    assert "Traceback" not in run.stderr


def test_role_cases_are_not_run_without_their_tokens_and_do_not_fail_the_run(server: ServerProcess,
                                                                               tmp_path: Path) -> None:
    run = run_tool("--base-url", server.base_url, "--token", server.token, "--select", "access,HL7v2,CDA,large",
                   report_dir=tmp_path)
    assert run.returncode == 0, run.explain()
    verdicts = run.verdicts()
    assert {v for k, v in verdicts.items() if k.startswith(("ACCESS", "HL7V2"))} == {"not run"}
    assert {v for k, v in verdicts.items() if k.startswith("CDA")} == {"not declared"}
    messages = {r["id"]: r["message"] for r in run.report["results"]}
    assert "needs the token of: blocked professional" in messages["ACCESS-05"]
    assert "--mllp HOST:PORT" in messages["HL7V2-01"]
    assert verdicts["FHIR-create-04"] == "not run" and "run with --large" in messages["FHIR-create-04"]


class NotConformant(BaseHTTPRequestHandler):
    """A server that declares Patient create/read and answers 200 with an empty object to everything."""

    CAPABILITY = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "software": {"name": "careless"},
                  "rest": [{"mode": "server", "resource": [{"type": "Patient", "interaction": [
                      {"code": "create"}, {"code": "read"}]}]}]}

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(self.CAPABILITY if self.path.endswith("/metadata") else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def careless() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotConformant)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/fhir"
    httpd.shutdown()
    httpd.server_close()


def test_a_non_conformant_server_fails_with_requirements_and_undeclared_features_are_not_declared(
        careless: str, tmp_path: Path) -> None:
    run = run_tool("--base-url", careless, "--select", "FHIR,MHD", report_dir=tmp_path)
    assert run.returncode == 1, run.explain()
    assert "Traceback" not in run.stdout + run.stderr
    verdicts = run.verdicts()
    assert verdicts["FHIR-create-01"] == "failed" and verdicts["FHIR-read-02"] == "failed"
    assert verdicts["FHIR-update-01"] == "not declared" and verdicts["MHD-ITI65-01"] == "not declared"
    assert verdicts["FHIR-transaction-01"] == "not declared"
    create = next(r for r in run.report["results"] if r["id"] == "FHIR-create-01")
    assert "expected 201, got 200" in create["message"]
    assert create["exchanges"][-1]["status"] == 200 and create["exchanges"][-1]["method"] == "POST"
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    failure = next(c for c in suite.iter("testcase") if c.get("name", "").startswith("FHIR-create-01"))
    assert "SHALL also return a Location header" in failure.find("failure").text  # type: ignore[union-attr]
    assert int(suite.get("failures", "0")) >= 2 and int(suite.get("skipped", "0")) >= 10
    assert "careless" in (tmp_path / "report.html").read_text()


def test_a_toml_config_and_keep_leave_the_run_data_for_inspection(server: ServerProcess, tmp_path: Path) -> None:
    config = tmp_path / "target.toml"
    config.write_text(f'base_url = "{server.base_url}"\ntoken = "{server.token}"\n\n[roles]\npatient = ""\n')
    run = run_tool("--config", str(config), "--keep", "--select", "FHIR-read-01", report_dir=tmp_path / "report")
    assert run.returncode == 0, run.explain()
    (kept,) = run.report["created"]
    assert kept["note"] == "kept (--keep)" and not kept["deleted"]
    read = server.get(f"{server.base_url}/{kept['reference']}")
    assert read.status_code == 200
    assert read.json()["meta"]["tag"] == [{"system": "urn:fhir-conformance:test", "code": run.report["run_id"]}]
    assert server.request("DELETE", f"{server.base_url}/{kept['reference']}").status_code in (200, 204)
    assert run.report["options"]["keep"] is True and run.report["options"]["token"] == "given"
    assert server.token not in (tmp_path / "report" / "report.json").read_text()
