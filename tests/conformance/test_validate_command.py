"""`fhir-conformance validate FILE...` (the checks themselves: conformance/validate/, tested in
tests/conformance_validate/): the command's exit status, its reports, a missing file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conformance.tool import run_tool

FIXTURES = Path(__file__).resolve().parents[1] / "hl7v2" / "fixtures"


def test_a_good_message_passes_and_a_file_of_no_known_kind_fails_with_reports(tmp_path: Path) -> None:
    good = run_tool("validate", str(FIXTURES / "adt_a28.hl7"), report_dir=tmp_path / "good")
    assert good.returncode == 0, good.explain()
    assert good.report["target"] == "offline" and good.report["summary"]["failed"] == 0
    odd = tmp_path / "notes.txt"
    odd.write_text("neither FHIR, CDA nor HL7 v2")
    bad = run_tool("validate", str(odd), str(FIXTURES / "adt_a28.hl7"), report_dir=tmp_path / "bad")
    assert bad.returncode == 1, bad.explain()
    assert "Traceback" not in bad.stdout + bad.stderr
    suite = ET.parse(tmp_path / "bad" / "junit.xml").getroot()
    assert int(suite.get("failures", "0")) >= 1
    assert "notes.txt" in (tmp_path / "bad" / "report.html").read_text()


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run = run_tool("validate", str(tmp_path / "absent.json"))
    assert run.returncode == 2 and "no such file" in run.stderr and "Traceback" not in run.stderr, run.explain()
