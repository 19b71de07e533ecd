"""The README's patient example (section "A patient's own entries") runs as written, with curl, jq
and `fhir-server token`, against this run's server: a weight and a PDF added with a patient token."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.access.world import World, new_ins, open_world
from tests.mhd.documents import PDF
from tests.server_process import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- patient-entries: tests/access/test_readme_patient.py runs this block -->"
README_INS = "248039263001064"


def readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r"\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert found, "the README's patient example is missing"
    return found.group(1)


def responses(output: str) -> list[dict[str, Any]]:
    """The JSON documents curl printed, one after the other."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position = 0
    while position < len(output):
        if output[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(output, position)
        found.append(value)
    return found


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq") and shutil.which("base64")),
                    reason="the README's example needs curl, jq and base64")
def test_the_readme_patient_example(server: ServerProcess, tmp_path: Path) -> None:
    world: World = open_world(server)
    world.patient_id, world.ins = world.patient(birth_date="1948-03-09", ins=new_ins())
    script = (readme_block()
              .replace("http://127.0.0.1:8080/fhir", server.base_url)
              .replace(".venv/bin/fhir-server", str(Path(sys.executable).parent / "fhir-server"))
              .replace("--data-dir ./data", f"--data-dir {server.data_dir}")
              .replace(README_INS, world.ins))
    (tmp_path / "bilan.pdf").write_bytes(PDF)
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "FHIR_BASE_URL": server.base_url})
    assert ran.returncode == 0, ran.stderr
    weight, document = responses(ran.stdout)
    me = {"reference": f"Patient/{world.patient_id}"}
    assert weight["resourceType"] == "Observation" and weight["performer"] == [me], weight
    assert document["resourceType"] == "DocumentReference" and document["author"] == [me], document
    assert document["category"][0]["coding"][0]["code"] == "90"
    binary_id = document["content"][0]["attachment"]["url"].rsplit("Binary/", 1)[1]
    assert base64.b64decode(world.get("platform", f"/Binary/{binary_id}").json()["data"]) == PDF
    provenances = world.get("platform", "/Provenance", params={"patient": world.patient_id}).json()
    targets = {t["reference"].split("/_history/")[0] for e in provenances.get("entry", []) for t in e["resource"]["target"]}
    assert {f"Observation/{weight['id']}", f"DocumentReference/{document['id']}"} <= targets
    world.http.close()
