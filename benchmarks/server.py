"""The server under test (`fhir-server serve`) as a child process, and the store it talks to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

EMBEDDED_STORE_MODULE = "nx_27017.nx_27017"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data_dir: Path
    port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/fhir"

    @property
    def external_store(self) -> str | None:
        return os.environ.get("MONGODB_URL") or None

    @property
    def database(self) -> str:
        return os.environ.get("FHIR_DATABASE", "fhir")

    def start(self, timeout: float = 90.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--mllp-port", str(self.mllp_port)]
        log = open(self.data_dir.parent / "server.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}; see {log.name}")
            try:
                if httpx.get(f"{self.base_url}/metadata", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout:.0f}s; see {log.name}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def front(self) -> psutil.Process:
        assert self.process is not None, "server not started"
        return psutil.Process(self.process.pid)

    def store(self) -> psutil.Process | None:
        """The embedded store child process; None when the server uses MONGODB_URL."""
        for child in self.front().children(recursive=True):
            if EMBEDDED_STORE_MODULE in " ".join(child.cmdline()):
                return child
        return None

    def store_url(self) -> str:
        if self.external_store:
            return self.external_store
        store = self.store()
        if store is None:
            raise RuntimeError("no embedded store child process found")
        command = store.cmdline()
        port = command[command.index("--port") + 1]
        return f"mongodb://127.0.0.1:{port}/?directConnection=true&journal=true"
