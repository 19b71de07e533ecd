"""Data survives a restart; an unreachable MongoDB is one clear line, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.api.test_crud import patient
from tests.server_process import ServerProcess, free_port


def test_data_survives_restart(tmp_path: Path, unique: str) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        created = httpx.post(f"{server.base_url}/Patient", json=patient(unique), headers={"Content-Type": "application/fhir+json"}).json()
    finally:
        server.stop()
    assert (tmp_path / "data" / "store" / "fhir.db").exists()
    again = ServerProcess(tmp_path / "data").start()
    try:
        read = httpx.get(f"{again.base_url}/Patient/{created['id']}")
        assert read.status_code == 200 and read.json()["name"] == created["name"]
    finally:
        again.stop()


def test_unreachable_mongodb_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
        env={"MONGODB_URL": f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=500", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach MongoDB" in lines[0]
    assert "Traceback" not in result.stderr
