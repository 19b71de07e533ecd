"""Every case of the tool passes against this server when it is given every token and endpoint;
the reports say so in their three forms; the run leaves nothing behind."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

from tests.conformance.tool import run_tool
from tests.server_process import ServerProcess

# The types the tool writes (Binary cannot be searched by tag; its DocumentReference and the cleanup
# report say what became of it).
WRITTEN = ("Patient", "Practitioner", "Observation", "DocumentReference", "List")


def tagged(server: ServerProcess) -> dict[str, int]:
    """How many resources of each type carry the tool's tag (any run)."""
    counts = {}
    for resource_type in WRITTEN:
        answer = httpx.get(f"{server.base_url}/{resource_type}", headers=server.headers, timeout=60,
                           params={"_tag": "urn:fhir-conformance:test|", "_summary": "count"})
        assert answer.status_code == 200, answer.text
        counts[resource_type] = answer.json()["total"]
    return counts


def test_every_case_passes_with_every_token_and_the_run_leaves_nothing(server: ServerProcess, roles_config: Path,
                                                                       tmp_path: Path) -> None:
    before = tagged(server)
    run = run_tool("--config", str(roles_config), report_dir=tmp_path)
    assert run.returncode == 0, run.explain()
    report = run.report
    # All but the one case that needs --large (run by test_wheel.py, in make test-all).
    assert run.verdicts()["FHIR-create-04"] == "not run"
    assert report["summary"]["passed"] == len(report["results"]) - 1 >= 55, report["summary"]
    assert {r["requirement"]["spec"] for r in report["results"]} >= {"FHIR-R4", "IHE-ITI-65", "IHE-ITI-67",
                                                                     "IHE-ITI-68", "ANS-PDSm", "CSP", "HL7v2.5"}
    assert report["software"]["name"] == "fhir-server" and report["options"]["token"] == "given"
    assert set(report["by_tag"]) >= {"FHIR", "ITI-65", "PDSm", "access", "HL7v2", "CDA"}

    # Cleanup: everything the run created is gone, and the tagged counts are what they were.
    assert report["created"] and all(c["deleted"] for c in report["created"]), report["created"]
    for created in report["created"]:
        assert httpx.get(f"{server.base_url}/{created['reference']}", headers=server.headers).status_code in (404, 410)
    assert tagged(server) == before

    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.tag == "testsuite" and int(suite.get("tests", "0")) == len(report["results"])
    assert suite.get("failures") == "0" and suite.get("errors") == "0" and suite.get("skipped") == "1"
    assert len(suite.findall("testcase")) == len(report["results"])

    html = (tmp_path / "report.html").read_text()
    assert "fhir-server 0.1.0" in html and report["run_id"] in html
    assert "Servers SHALL replace all matching links in the bundle" in html
    assert "Bearer …" in html and server.token not in html
