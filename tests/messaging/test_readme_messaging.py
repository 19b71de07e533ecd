"""The README's secure-messaging example (section "Secure messaging") runs as written, with curl and
`fhir-server token`, against this run's server: a professional with no authorisation on the record
opens a thread with the patient, then reads it back."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.access.world import IDNATPS_SYSTEM, PHYSICIAN, Professional, open_world
from tests.server_process import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- messaging: tests/messaging/test_readme_messaging.py runs this block -->"
README_IDNATPS = "810001234567"


def readme_block() -> str:
    found = re.search(re.escape(MARKER) + r"\n```sh\n(.*?)\n```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert found, "the README's messaging example is missing"
    return found.group(1)


@pytest.mark.skipif(not shutil.which("curl"), reason="the README's example needs curl")
def test_the_readme_messaging_example(server: ServerProcess, tmp_path: Path) -> None:
    world = open_world(server)
    world.patient_id, _ = world.patient()
    script = (readme_block()
              .replace("http://127.0.0.1:8080/fhir", server.base_url)
              .replace(".venv/bin/fhir-server", str(Path(sys.executable).parent / "fhir-server"))
              .replace("--data-dir ./data", f"--data-dir {server.data_dir}"))
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "FHIR_BASE_URL": server.base_url,
                                           "PATIENT": world.patient_id})
    assert ran.returncode == 0, ran.stderr
    header = json.loads(ran.stdout)
    assert header["resourceType"] == "Communication" and header["status"] == "in-progress", header
    assert header["sender"]["identifier"] == {"system": IDNATPS_SYSTEM, "value": README_IDNATPS}
    doctor = Professional(README_IDNATPS, PHYSICIAN, "")
    world.tokens["doctor"] = world.practitioner_token(doctor)
    assert world.get("doctor", f"/Communication/{header['id']}").status_code == 200
    world.http.close()
