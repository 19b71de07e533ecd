"""Settings (issue 17): the command line over the environment over `.env`; every bad value named on
its own line and the command stopped with exit 2 before anything starts; `fhir-server config` shows
what `serve` would use, with no secret in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def fhir_server(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # Only this test's FHIR_* and MONGODB_URL: the run's own (FHIR_TEST_*...) must not leak in.
    base = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_") and k != "MONGODB_URL"}
    return subprocess.run([sys.executable, "-m", "fhir_server.cli", *args], env={**base, **(env or {})},
                          cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_bad_value_is_named_on_its_own_line_and_nothing_starts(tmp_path: Path) -> None:
    done = fhir_server("serve", "--data-dir", str(tmp_path / "data"), "--workers", "0",
                       env={"FHIR_PORT": "eighty", "FHIR_MAX_COUNT": "-5", "MONGODB_URL": "http://db",
                            "FHIR_LOG_FORMAT": "xml"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) == 5, done.stderr
    assert all(line.startswith("fhir-server: ") for line in lines), done.stderr
    named = {line.removeprefix("fhir-server: ").split(":")[0] for line in lines}
    assert named == {"FHIR_PORT", "FHIR_MAX_COUNT", "MONGODB_URL", "FHIR_LOG_FORMAT", "--workers"}, lines
    assert any("'eighty'" in line for line in lines), lines
    assert not (tmp_path / "data").exists(), "refused before the store was made"


def test_the_command_line_wins_over_the_environment_which_wins_over_dot_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FHIR_PORT=7001\nFHIR_DATABASE=from_dotenv\nFHIR_MAX_COUNT=300\n")
    done = fhir_server("config", "--json", "--port", "7003", env={"FHIR_PORT": "7002", "FHIR_MAX_COUNT": "400"},
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["port"], shown["max_count"], shown["database"]) == (7003, 400, "from_dotenv")


def test_config_masks_secrets(tmp_path: Path) -> None:
    done = fhir_server("config", env={
        "MONGODB_URL": "mongodb://fhir:s3cr3t-db@db1,db2/?replicaSet=rs0&tlsCertificateKeyFilePassword=s3cr3t-tls",
        "FHIR_SMTP_URL": "smtp+starttls://mailer:s3cr3t-mail@smtp.example.org:587"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "s3cr3t" not in done.stdout, done.stdout
    lines = {name.strip(): value for name, _, value in (line.partition(" = ") for line in done.stdout.splitlines())}
    assert lines["mongodb_url"] == "mongodb://fhir:***@db1,db2/?replicaSet=rs0&tlsCertificateKeyFilePassword=***"
    assert lines["smtp_url"] == "smtp+starttls://mailer:***@smtp.example.org:587"
