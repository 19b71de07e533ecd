"""Running the real server (`fhir-server serve`) as a child process on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    # Its own process group, so a test can kill the server and its store together, as a crash would.
    own_group: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {**os.environ, **self.env}
        command = [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--mllp-port", str(self.mllp_port)]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=self.own_group)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/metadata", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@dataclass
class RemoteServer:
    """A server someone else runs (the conformance suite's target)."""

    base_url: str

    @property
    def root_url(self) -> str:
        return self.base_url.rsplit("/fhir", 1)[0] if "/fhir" in self.base_url else self.base_url
