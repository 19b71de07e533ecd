"""Settings (issue 17): the command line over the environment over `.env`; every bad value named on
its own line and the command stopped with exit 2 before anything starts; `fhir-server config` shows
what `serve` would use, with no secret in it. Run in this process (`main`), with the environment
this test gives and no other FHIR_* variable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fhir_server.cli import main


def fhir_server(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
                env: dict[str, str] | None = None, cwd: Path) -> tuple[int, str, str]:
    for name in list(os.environ):
        if name.startswith("FHIR_") or name == "MONGODB_URL":
            monkeypatch.delenv(name)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_bad_value_is_named_on_its_own_line_and_nothing_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = fhir_server(monkeypatch, capsys, "serve", "--data-dir", str(tmp_path / "data"), "--workers", "0",
                               env={"FHIR_PORT": "eighty", "FHIR_MAX_COUNT": "-5", "MONGODB_URL": "http://db",
                                    "FHIR_LOG_FORMAT": "xml", "FHIR_RATE_TOKEN": "lots", "FHIR_CORS_ORIGINS": "*",
                                    "FHIR_OUTBOUND_ALLOW": "10.0.0.0/99",
                                    "FHIR_TRUSTED_ISSUERS": '[{"issuer": "https://psc.example"}]'}, cwd=tmp_path)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 9, err
    assert all(line.startswith("fhir-server: ") for line in lines), err
    named = {line.removeprefix("fhir-server: ").split(":")[0] for line in lines}
    assert named == {"FHIR_PORT", "FHIR_MAX_COUNT", "MONGODB_URL", "FHIR_LOG_FORMAT", "--workers", "FHIR_RATE_TOKEN",
                     "FHIR_CORS_ORIGINS", "FHIR_OUTBOUND_ALLOW", "FHIR_TRUSTED_ISSUERS"}, lines
    assert any("'eighty'" in line for line in lines), lines
    assert not (tmp_path / "data").exists(), "refused before the store was made"


def test_the_command_line_wins_over_the_environment_which_wins_over_dot_env(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".env").write_text("FHIR_PORT=7001\nFHIR_DATABASE=from_dotenv\nFHIR_MAX_COUNT=300\n")
    code, out, err = fhir_server(monkeypatch, capsys, "config", "--json", "--port", "7003",
                                 env={"FHIR_PORT": "7002", "FHIR_MAX_COUNT": "400"}, cwd=tmp_path)
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["port"], shown["max_count"], shown["database"]) == (7003, 400, "from_dotenv")


def test_config_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = fhir_server(monkeypatch, capsys, "config", env={
        "MONGODB_URL": "mongodb://fhir:s3cr3t-db@db1,db2/?replicaSet=rs0&tlsCertificateKeyFilePassword=s3cr3t-tls",
        "FHIR_SMTP_URL": "smtp+starttls://mailer:s3cr3t-mail@smtp.example.org:587"}, cwd=tmp_path)
    assert code == 0, err
    assert "s3cr3t" not in out, out
    lines = {name.strip(): value for name, _, value in (line.partition(" = ") for line in out.splitlines())}
    assert lines["mongodb_url"] == "mongodb://fhir:***@db1,db2/?replicaSet=rs0&tlsCertificateKeyFilePassword=***"
    assert lines["smtp_url"] == "smtp+starttls://mailer:***@smtp.example.org:587"
