"""Each CDA fixture converts to exactly its checked-in expected output.

Regenerate the expected files after an intended change with:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/cda/test_cda_golden.py

then review the diff of tests/cda/golden/ before committing it.
"""

import json
import os

import pytest
from tests.cda.conftest import FIXTURES, GOLDEN

from cda.convert import convert_cda
from tests.golden import with_binary_digests

CASES = sorted(path.stem for path in FIXTURES.glob("*.xml"))


def snapshot(data: bytes) -> dict:
    """The conversion result as JSON; Binary payloads are summarised by digest and size so the
    expected files stay reviewable (test_binary_payloads checks the bytes themselves)."""
    result = convert_cda(data)
    bundle = with_binary_digests(result.bundle)
    return {
        "master_identifier": result.master_identifier,
        "document_reference_fullurl": result.document_reference_fullurl,
        "warnings": result.warnings,
        "bundle": bundle,
    }


def test_every_required_kind_of_document_has_a_fixture():
    assert {
        "ldl_ses_discharge_letter", "ep_med_dm_prescription", "cr_bio_lab_report",
        "level1_pdf", "cr_bio_lab_report_rplc",
    } <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_conversion_matches_golden(name):
    produced = snapshot((FIXTURES / f"{name}.xml").read_bytes())
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(produced, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert produced == json.loads(golden.read_text(encoding="utf-8"))
