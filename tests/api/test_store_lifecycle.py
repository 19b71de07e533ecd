"""Starting and stopping: data survives a restart; every refusal to start is one clear line on stderr
(unreachable MongoDB, port in use, data dir in use, another data dir's embedded store); "ready" is
said once the port serves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.test_crud import patient
from tests.server_process import ServerProcess, free_port


def test_data_survives_restart(tmp_path: Path, unique: str) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        created = server.post(f"{server.base_url}/Patient", json=patient(unique), headers={"Content-Type": "application/fhir+json"}).json()
    finally:
        server.stop()
    assert (tmp_path / "data" / "store" / "fhir.db").exists()
    again = ServerProcess(tmp_path / "data").start()
    try:
        read = again.get(f"{again.base_url}/Patient/{created['id']}")
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


def serve(data_dir: Path, port: int, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`fhir-server serve` expected to refuse to start: its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(port), "--data-dir", str(data_dir), *options],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60,
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def store_url(data_dir: Path) -> str:
    """The URL of the embedded store a server started under `data_dir` (its port is on its command line)."""
    pid = (data_dir / "embedded-store.pid").read_text().strip()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return f"mongodb://127.0.0.1:{argv[argv.index('--port') + 1]}/?directConnection=true"


def test_ready_is_said_once_the_port_serves(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "ready: FHIR R4 at" in line:
                break
        else:
            pytest.fail("the server never said ready")
        assert f"http://127.0.0.1:{port}/fhir" in line
        assert httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize("which", ["http", "mllp"])
def test_a_port_in_use_is_one_line_and_no_store_is_left(tmp_path: Path, which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if which == "http":
            result = serve(tmp_path / "data", port)
        else:
            result = serve(tmp_path / "data", free_port(), "--mllp-port", str(port))
    assert result.returncode != 0
    assert one_line(result.stderr) == f"fhir-server: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "ready:" not in result.stdout + result.stderr
    # No store outlives the refusal, and the data dir is free for the next start.
    assert not (tmp_path / "data" / "embedded-store.pid").exists()
    again = ServerProcess(tmp_path / "data").start()
    again.stop()


def test_a_second_server_on_the_same_data_dir_is_told_why(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "data").start()
    try:
        assert first.process is not None
        # As a second `make run`: same data dir, same port.
        result = serve(tmp_path / "data", first.port)
        assert result.returncode != 0
        assert one_line(result.stderr) == (f"fhir-server: the data dir {(tmp_path / 'data').resolve()} "
                                           f"is in use by another server (PID {first.process.pid})")
        assert first.get(f"{first.base_url}/metadata").status_code == 200
    finally:
        first.stop()


def test_a_server_reaching_another_data_dirs_embedded_store_is_refused(tmp_path: Path, unique: str) -> None:
    first = ServerProcess(tmp_path / "first").start()
    try:
        family = f"Refused{unique}"
        for gender in ("female", "female", "male"):
            created = first.post(f"{first.base_url}/Patient", json={**patient(unique, family), "gender": gender})
            assert created.status_code == 201
        women = {"gender": "female", "family": family}
        assert first.get(f"{first.base_url}/Patient", params=women).json()["total"] == 2

        result = serve(tmp_path / "second", free_port(), env={"MONGODB_URL": store_url(tmp_path / "first")})
        assert result.returncode != 0
        line = one_line(result.stderr)
        assert line.startswith("fhir-server: MONGODB_URL reaches the embedded store of another data dir"), line
        # Refused before it created an index: the first server's searches still answer right.
        assert first.get(f"{first.base_url}/Patient", params=women).json()["total"] == 2
    finally:
        first.stop()


def test_a_process_given_the_store_and_its_data_dir_shares_it(tmp_path: Path, unique: str) -> None:
    first = ServerProcess(tmp_path / "data").start()
    try:
        second = ServerProcess(tmp_path / "data", env={"MONGODB_URL": store_url(tmp_path / "data")}).start()
        try:
            created = second.post(f"{second.base_url}/Patient", json={**patient(unique), "gender": "female"}).json()
            read = first.get(f"{first.base_url}/Patient", params={"gender": "female", "identifier": f"1{unique}"})
            assert [e["resource"]["id"] for e in read.json()["entry"]] == [created["id"]]
        finally:
            second.stop()
    finally:
        first.stop()
