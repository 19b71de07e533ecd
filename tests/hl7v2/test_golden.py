"""Each fixture message converts to exactly its checked-in expected bundle.

Regenerate the expected files after an intended change with:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/hl7v2/test_golden.py

then review the diff of tests/hl7v2/golden/ before committing it.
"""

import json
import os

import pytest

from fhir_server.ingest.hl7v2.convert import convert_message
from tests.hl7v2.conftest import FIXTURES, GOLDEN, fixture
from tests.golden import with_binary_digests

CASES = sorted(path.name for path in FIXTURES.glob("*.hl7") if not path.name.startswith("malformed"))


def snapshot(message: bytes) -> dict:
    """The conversion as JSON; Binary payloads are summarised by digest and size so the expected
    files stay reviewable (test_convert checks the bytes themselves)."""
    result = convert_message(message)
    bundle = with_binary_digests(result.bundle)
    return {
        "control_id": result.control_id,
        "message_type": result.message_type,
        "structure": result.structure,
        "warnings": result.warnings,
        "bundle": bundle,
    }


def test_every_required_message_has_a_fixture():
    expected = {
        "mdm_t02.hl7", "mdm_t10_replacement.hl7", "mdm_t04_cancellation.hl7", "oru_r01.hl7",
        "rde_o11.hl7", "omp_o09.hl7", "adt_a01.hl7", "adt_a03.hl7", "adt_a04.hl7", "adt_a08.hl7",
        "adt_a28.hl7", "adt_a31.hl7", "adt_a40.hl7", "mdm_t02_unknown_patient.hl7",
        *(f"siu_{event}.hl7" for event in ("s12", "s13", "s14", "s15", "s16", "s17", "s26")),
        "rds_o13.hl7", "rds_o13_v28.hl7", "vxu_v04.hl7", "vxu_v04_refused.hl7", "vxu_v04_v28.hl7",
    }
    assert expected <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_conversion_matches_golden(name):
    produced = snapshot(fixture(name))
    golden = GOLDEN / name.replace(".hl7", ".json")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(produced, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert golden.exists(), f"no expected output for {name}: run with UPDATE_GOLDEN=1 and review it"
    assert produced == json.loads(golden.read_text(encoding="utf-8"))
