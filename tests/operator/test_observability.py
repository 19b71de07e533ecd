"""What an operator sees of a running server (issue 17): one JSON line per request (with its
request id, never a query value, an INS, a name or a token), per MLLP message and per ingest;
`--log-level` and `--log-format` obeyed by every logger; the request id returned and put in
OperationOutcomes; /health/live and /health/ready open; /metrics counting what was asked, for
operators only; the example files of the README accepted as the README sends them."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fhir_server.cli import main
from fhir_server.storage.embedded import EmbeddedStore
from tests.server_process import ServerProcess, server_token

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
# The test patient of examples/ (a made-up NIR with a valid key) and a name no other line could hold.
EXAMPLE_INS = "285076312345688"
INS = "279127512345636"
NAME = "ZORGLUBSECRET"
REQUEST_ID_EXTENSION = "https://fhir-server.example.org/StructureDefinition/request-id"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("observed") / "data"
    process = ServerProcess(data_dir, args=["--log-format", "json", "--log-level", "info"]).start()
    yield process
    process.stop()


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """Every line the server wrote, each parsed: a line that is not JSON fails here."""
    return [json.loads(line) for line in server.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]


def lines_where(server: ServerProcess, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The lines `wanted` picks, once there are some: a line is written when its answer is sent."""
    deadline = time.monotonic() + 10
    while not (found := [line for line in log_lines(server) if wanted(line)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def requests_of(server: ServerProcess, request_id: str) -> list[dict[str, Any]]:
    return lines_where(server, lambda line: line.get("message") == "request" and line.get("request_id") == request_id)


def get(server: ServerProcess, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kwargs.pop("headers", {})}
    return httpx.get(f"{server.root_url}{path}", headers=headers, timeout=30, **kwargs)


def test_one_json_line_per_request_with_its_id_and_nothing_that_identifies_a_patient(observed: ServerProcess) -> None:
    created = observed.post(f"{observed.base_url}/Patient", json={
        "resourceType": "Patient", "identifier": [{"system": INS_SYSTEM, "value": INS}],
        "name": [{"family": NAME, "given": ["Test"]}], "birthDate": "1979-12-01"}, timeout=30)
    assert created.status_code == 201, created.text
    request_id = f"test-{uuid.uuid4()}"
    found = get(observed, "/fhir/Patient", observed.token, headers={"X-Request-ID": request_id},
                params={"identifier": f"{INS_SYSTEM}|{INS}", "name": NAME})
    assert found.status_code == 200 and found.json()["total"] == 1, found.text
    assert found.headers["X-Request-ID"] == request_id
    patient_token = server_token(observed.data_dir, observed.base_url, "patient", ins=INS)
    own = get(observed, f"/fhir/Patient/{created.json()['id']}", patient_token)
    assert own.status_code == 200, own.text

    [line] = requests_of(observed, request_id)
    assert {k: line[k] for k in ("level", "method", "path", "query", "status", "interaction", "type", "caller_kind",
                                 "caller_id")} == {
        "level": "info", "method": "GET", "path": "/fhir/Patient", "query": "identifier,name", "status": 200,
        "interaction": "search-type", "type": "Patient", "caller_kind": "platform", "caller_id": "platform"}
    assert isinstance(line["duration_ms"], float) and line["time"].endswith("Z")
    [by_patient] = requests_of(observed, own.headers["X-Request-ID"])
    assert (by_patient["caller_kind"], by_patient["caller_id"]) == ("patient", f"Patient/{created.json()['id']}")
    text = observed.log_path.read_text(encoding="utf-8")
    for secret in (INS, NAME, observed.token, patient_token, patient_token.rsplit(".", 1)[1]):
        assert secret not in text


def test_a_request_id_that_is_not_safe_is_replaced_and_outcomes_carry_it(observed: ServerProcess) -> None:
    replaced = get(observed, "/fhir/Patient/none-such", observed.token, headers={"X-Request-ID": "a b\"c" + "x" * 200})
    assert replaced.status_code == 404
    given = replaced.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", given), given
    assert replaced.json()["extension"] == [{"url": REQUEST_ID_EXTENSION, "valueString": given}]
    # A refusal before any route (no token) carries it too, and so does its line.
    refused = get(observed, "/fhir/Patient", headers={"X-Request-ID": "refused-1"})
    assert refused.status_code == 401 and refused.headers["X-Request-ID"] == "refused-1"
    assert refused.json()["extension"][0]["valueString"] == "refused-1"
    [line] = requests_of(observed, "refused-1")
    assert line["status"] == 401 and "caller_kind" not in line


def test_health_endpoints_need_no_token_and_say_nothing_of_the_data(observed: ServerProcess) -> None:
    live = get(observed, "/health/live")
    assert (live.status_code, live.json()["status"]) == (200, "pass")
    ready = get(observed, "/health/ready")
    assert ready.status_code == 200 and ready.headers["content-type"] == "application/health+json"
    assert ready.json() == {"status": "pass", "checks": {name: [{"status": "pass"}] for name in ("startup", "store", "mllp")}}


def scrape(server: ServerProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    token = server_token(server.data_dir, server.base_url, "admin")
    response = get(server, "/metrics", token)
    assert response.status_code == 200, response.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_the_requests_made_and_are_for_operators_only(observed: ServerProcess) -> None:
    labels = {"interaction": "read", "type": "Observation", "status": "404"}
    before = scrape(observed)
    for _ in range(3):
        assert get(observed, f"/fhir/Observation/{uuid.uuid4()}", observed.token).status_code == 404
    after = scrape(observed)
    assert sample(after, "fhir_http_requests_total", **labels) - sample(before, "fhir_http_requests_total", **labels) == 3
    timed = {"interaction": "read", "type": "Observation"}
    assert sample(after, "fhir_http_request_duration_seconds_count", **timed) - \
        sample(before, "fhir_http_request_duration_seconds_count", **timed) == 3
    assert sum(v for (name, _), v in after.items() if name == "fhir_store_command_duration_seconds_count") > 0
    assert sample(after, "fhir_job_runs_total", job="outbox dispatch", outcome="ok") > 0
    assert ("fhir_outbox_pending_events", frozenset()) in after

    assert get(observed, "/metrics").status_code == 401
    practitioner = server_token(observed.data_dir, observed.base_url, "practitioner", idnatps="810000000002")
    refused = get(observed, "/metrics", practitioner)
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`fhir-server ARGS` run in this process (a child would spend seconds importing the server)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def mllp_send(capsys: pytest.CaptureFixture[str], server: ServerProcess, path: Path) -> tuple[int, str]:
    code, out, err = cli(capsys, "mllp-send", "--port", str(server.mllp_port), str(path))
    return code, out + err


def test_the_example_files_are_accepted_as_the_readme_sends_them(observed: ServerProcess,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = scrape(observed)
    cda = httpx.post(f"{observed.root_url}/ingest/cda", content=(EXAMPLES / "cda-discharge-letter.xml").read_bytes(),
                     headers={**observed.headers, "Content-Type": "application/hl7-cda+xml"}, timeout=60)
    assert cda.status_code == 201, cda.text
    assert cda.json()["resourceType"] == "DocumentReference"
    code, answer = mllp_send(capsys, observed, EXAMPLES / "mdm-t02-letter.hl7")
    assert code == 0 and "MSA|AA|EXAMPLE-MDM-0001" in answer, answer
    bundle = httpx.post(observed.base_url, content=(EXAMPLES / "iti65-provide-bundle.json").read_bytes(),
                        headers={**observed.headers, "Content-Type": "application/fhir+json"}, timeout=60)
    assert bundle.status_code == 200, bundle.text
    assert [e["response"]["status"][:3] for e in bundle.json()["entry"]] == ["201", "201", "201"]
    documents = observed.get(f"{observed.base_url}/DocumentReference",
                             params={"patient.identifier": f"{INS_SYSTEM}|{EXAMPLE_INS}"}, timeout=30).json()
    assert documents["total"] == 3, documents

    lines_where(observed, lambda line: line.get("control_id") == "EXAMPLE-MDM-0001")
    ingests = [line for line in log_lines(observed) if line.get("message") == "ingest"]
    assert {(line["channel"], line["outcome"]) for line in ingests} >= {("cda", "stored"), ("mllp", "stored"),
                                                                         ("iti-65", "stored")}
    [mllp] = [line for line in ingests if line["channel"] == "mllp" and line.get("control_id") == "EXAMPLE-MDM-0001"]
    assert (mllp["message_type"], mllp["ack"]) == ("MDM^T02", "AA") and mllp["request_id"]
    after = scrape(observed)
    assert sample(after, "fhir_mllp_messages_total", message_type="MDM^T02", ack="AA") - \
        sample(before, "fhir_mllp_messages_total", message_type="MDM^T02", ack="AA") == 1
    assert sample(after, "fhir_ingest_total", channel="cda", outcome="stored") - \
        sample(before, "fhir_ingest_total", channel="cda", outcome="stored") == 1
    assert EXAMPLE_INS not in observed.log_path.read_text(encoding="utf-8")


def test_a_refused_mllp_message_leaves_a_line_with_its_error(observed: ServerProcess,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    message = (EXAMPLES / "mdm-t02-letter.hl7").read_bytes().replace(b"EXAMPLE-MDM-0001", b"REFUSED-0001")
    # TXA-12 naming another document than the CDA it carries: AE, the sender's to fix.
    message = message.replace(b"|EXAMPLE-LDL-0002^^", b"|ANOTHER-0002^^")
    path = observed.data_dir.parent / "refused.hl7"
    path.write_bytes(message)
    code, answer = mllp_send(capsys, observed, path)
    assert code == 1 and "MSA|AE|REFUSED-0001" in answer, answer
    [line] = lines_where(observed, lambda line: line.get("control_id") == "REFUSED-0001")
    assert line["level"] == "warning" and line["ack"] in ("AE", "AR") and line["error"], line
    assert line["outcome"] in ("refused", "failed")


def test_reset_refuses_a_data_dir_a_server_holds_and_removes_a_stopped_one(
        observed: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def reset(data_dir: Path) -> tuple[int, str, str]:
        return cli(capsys, "reset", "--data-dir", str(data_dir), "--yes")

    code, _, err = reset(observed.data_dir)
    assert code == 1 and "in use by another server" in err and (observed.data_dir / "store").exists(), err
    stranger = tmp_path / "not-a-data-dir"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("keep me")
    assert reset(stranger)[0] == 1 and (stranger / "precious.txt").exists()
    stopped = tmp_path / "stopped"
    (stopped / "store").mkdir(parents=True)
    (stopped / "server.lock").write_text("1\n")
    code, out, err = reset(stopped)
    assert code == 0 and "store/" in out and not stopped.exists(), out + err


def test_log_level_and_text_format_are_obeyed_and_ready_fails_while_the_store_is_away(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", args=["--log-format", "text", "--log-level", "warning"]).start()
    try:
        assert get(server, "/fhir/Patient", server.token).status_code == 200
        store_pid = int(EmbeddedStore(server.data_dir).pid_file.read_text().strip())
        os.kill(store_pid, signal.SIGSTOP)
        try:
            ready = get(server, "/health/ready")
        finally:
            os.kill(store_pid, signal.SIGCONT)
        assert ready.status_code == 503, ready.text
        assert ready.json()["status"] == "fail" and ready.json()["checks"]["store"][0]["status"] == "fail"
        assert get(server, "/health/live").status_code == 200
    finally:
        server.stop()
    text = server.log_path.read_text(encoding="utf-8")
    assert "WARNING fhir_server: serving plain HTTP" in text, text
    assert " INFO " not in text and "request_id=" not in text and not text.lstrip().startswith("{"), text


def test_with_several_workers_a_scrape_counts_the_requests_of_all(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", args=["--log-format", "json"], workers=2).start()
    try:
        labels = {"interaction": "read", "type": "Observation", "status": "404"}
        before = sample(scrape(server), "fhir_http_requests_total", **labels)
        ids = [f"workers-{n}" for n in range(40)]
        for request_id in ids:
            # A connection each: the kernel hands each to one worker or the other.
            assert get(server, f"/fhir/Observation/{uuid.uuid4()}", server.token,
                       headers={"X-Request-ID": request_id}).status_code == 404
        served_by = {line["pid"] for line in lines_where(server, lambda line: line.get("request_id") in ids)}
        assert len(served_by) == 2, "both workers answered some"
        counts = {sample(scrape(server), "fhir_http_requests_total", **labels) - before for _ in range(6)}
        assert counts == {40}, counts
    finally:
        server.stop()
