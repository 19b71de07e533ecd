"""Running the real server (`fhir-server serve`) as a child process on free loopback ports, or,
when FHIR_TEST_INPROCESS=1, the same app served by uvicorn on a thread of the test process.

In-process, the server's code runs where tracing tools see it: `make mutate` (mutmut maps tests to
the functions they call and injects mutants in the test process) and line tracing without
subprocess hooks. The store is the same embedded store either way, in its own process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.storage.embedded import EmbeddedStore

IN_PROCESS = os.environ.get("FHIR_TEST_INPROCESS") == "1"


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
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
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


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ while the settings read it, as a child process would see them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class InProcessServer:
    """What `fhir-server serve` runs (embedded store, app, MLLP listener), on a thread."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    # An embedded store someone else runs (tests/store_pool.py); None starts one under data_dir.
    store_url: str | None = None
    store: EmbeddedStore | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> InProcessServer:
        with _environment(self.env):
            settings = Settings(port=self.port, data_dir=self.data_dir, mllp_port=self.mllp_port)
        if settings.mongodb_url:
            url, embedded = settings.mongodb_url, False
        elif self.store_url:
            url, embedded = self.store_url, True
        else:
            self.store = EmbeddedStore(self.data_dir.resolve())
            url, embedded = self.store.start(), True
        config = uvicorn.Config(create_app(settings, url, embedded=embedded), host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"fhir-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"in-process server did not start within {timeout}s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)
        self._server = self._thread = None
        if self.store is not None:
            self.store.stop()
            self.store = None


def dedicated_server(data_dir: Path, env: dict[str, str] | None = None) -> ServerProcess | InProcessServer:
    """A server of a test's own, in the same mode as the session's (FHIR_TEST_INPROCESS)."""
    kind = InProcessServer if IN_PROCESS else ServerProcess
    return kind(data_dir, env=dict(env or {}))
