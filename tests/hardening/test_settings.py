"""A wrong outbound or rate-limit setting stops `fhir-server serve` at once with one line saying
which and why, before any worker is forked (not a traceback, not a server without the limit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.server_process import free_port


def test_a_wrong_setting_stops_the_server_with_one_line(tmp_path: Path) -> None:
    # FHIR_OUTBOUND_ALLOW takes the same way out (SettingInvalid); its parsing is tested as a function.
    name, value = "FHIR_RATE_API_CLIENT", "lots"
    done = subprocess.run([sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(free_port()),
                           "--data-dir", str(tmp_path / "data")], env={**os.environ, name: value},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"fhir-server: {name}: {value!r}"), done.stderr
    assert "Traceback" not in done.stderr
